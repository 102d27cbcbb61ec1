// The waiting room: asks where the visitor's token stands every two
// seconds, shows the place and the wait, and goes on to the tickets with
// the pass once the visitor's turn came.
(function () {
  "use strict";
  var room = document.getElementById("queue");
  if (!room) { return; }
  var set = function (id, text) {
    var el = document.getElementById(id);
    if (el) { el.textContent = text; }
  };
  var wait = function (secs) {
    if (secs < 60) { return secs + " s"; }
    var m = Math.round(secs / 60);
    return m < 60 ? m + " min" : Math.floor(m / 60) + " h " + (m % 60) + " min";
  };
  var ask = function () {
    fetch(room.dataset.status, { headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (!s) { setTimeout(ask, 5000); return; }
        if (s.admitted && s.pass) {
          set("queue-state", "It's your turn.");
          window.location.href = room.dataset.continue + encodeURIComponent(s.pass);
          return;
        }
        set("position", String(s.position));
        set("wait", wait(s.estimated_wait_secs));
        setTimeout(ask, 2000);
      })
      .catch(function () { setTimeout(ask, 5000); });
  };
  setTimeout(ask, 2000);
}());
