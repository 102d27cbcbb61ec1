// The hold page: how long the tickets stay held, counted down.
(function () {
  "use strict";
  var c = document.getElementById("hold-countdown");
  if (!c) { return; }
  var until = Date.parse(c.dataset.until);
  if (isNaN(until)) { return; }
  var tick = function () {
    var left = Math.max(0, Math.floor((until - Date.now()) / 1000));
    var m = Math.floor(left / 60), s = left % 60;
    c.textContent = m + ":" + (s < 10 ? "0" : "") + s;
    if (left > 0) { setTimeout(tick, 1000); }
  };
  tick();
})();
