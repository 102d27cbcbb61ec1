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
    gates(f.gates || []);
  });

  // The gates' rows, rebuilt from each message (a gate added meanwhile
  // shows up too).
  function gates(list) {
    var box = document.getElementById("live-gates");
    var body = document.querySelector("#gate-figures tbody");
    if (!box || !body) return;
    box.hidden = list.length === 0;
    var rows = list.map(function (g) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-gate", g.id);
      var inside = String(g.inside) + (g.capacity == null ? "" : " / " + g.capacity);
      [[null, g.name], ["inside", inside], ["entries", g.entries], ["rate", g.scans_last_minute]].forEach(function (c) {
        var td = document.createElement("td");
        if (c[0]) td.className = c[0];
        td.textContent = String(c[1]);
        tr.appendChild(td);
      });
      return tr;
    });
    body.replaceChildren.apply(body, rows);
  }
})();
