// The live dashboard: figures pushed over server-sent events (no inline
// script, so the page's Content-Security-Policy forbids all of it).
(function () {
  var section = document.querySelector("[data-live]");
  if (!section) return;
  var conn = document.getElementById("conn");
  var src = new EventSource(section.getAttribute("data-live"));
  src.onopen = function () { conn.textContent = "live"; };
  src.onerror = function () { conn.textContent = "reconnecting…"; };
  src.addEventListener("figures", function (ev) {
    var f = JSON.parse(ev.data);
    ["sold", "available", "held", "admitted"].forEach(function (k) {
      var el = document.getElementById(k);
      if (el) el.textContent = f[k];
    });
  });
})();
