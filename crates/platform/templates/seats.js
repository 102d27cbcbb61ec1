// The storefront's seat map: pick seats by pointer or keyboard; the map
// follows other buyers' holds and purchases through the live stream.
(function () {
  "use strict";
  var map = document.getElementById("seat-map");
  if (!map) return;
  var inputs = document.getElementById("picked-inputs");
  var shown = document.getElementById("picked");
  var notice = document.getElementById("seat-notice");
  var seats = Array.prototype.slice.call(map.querySelectorAll(".seat"));
  var byId = {};
  seats.forEach(function (s) { byId[s.getAttribute("data-id")] = s; });
  var STATES = ["available", "held", "sold", "blocked"];

  function picked() {
    return seats.filter(function (s) { return s.classList.contains("selected"); });
  }
  function sync() {
    var p = picked();
    inputs.textContent = "";
    p.forEach(function (s) {
      var i = document.createElement("input");
      i.type = "hidden"; i.name = "seat"; i.value = s.getAttribute("data-id");
      inputs.appendChild(i);
    });
    shown.textContent = p.length
      ? p.map(function (s) { return s.getAttribute("aria-label"); }).join("; ")
      : "none";
  }
  function toggle(s) {
    if (!s.classList.contains("available") && !s.classList.contains("selected")) return;
    var on = !s.classList.contains("selected");
    s.classList.toggle("selected", on);
    s.setAttribute("aria-checked", on ? "true" : "false");
    sync();
  }
  function centre(s) {
    return { x: parseFloat(s.getAttribute("cx")), y: parseFloat(s.getAttribute("cy")) };
  }
  // The nearest seat in a direction (arrow keys).
  function near(from, dx, dy) {
    var a = centre(from), best = null, bestD = Infinity;
    seats.forEach(function (s) {
      if (s === from) return;
      var b = centre(s), vx = b.x - a.x, vy = b.y - a.y;
      if (dx && Math.sign(vx) !== dx) return;
      if (dy && Math.sign(vy) !== dy) return;
      var d = dx ? Math.abs(vx) + 3 * Math.abs(vy) : Math.abs(vy) + 3 * Math.abs(vx);
      if (d < bestD) { bestD = d; best = s; }
    });
    return best;
  }
  // A general-admission area: choosing it goes to its quantities.
  function area(a) {
    var f = document.getElementById("area-" + a.getAttribute("data-id"));
    if (!f) return;
    Array.prototype.forEach.call(document.querySelectorAll(".area.chosen, .area-choice.chosen"),
      function (x) { x.classList.remove("chosen"); });
    a.classList.add("chosen");
    f.classList.add("chosen");
    var q = f.querySelector("input");
    if (q) { q.focus(); if (q.value === "0") q.select(); }
  }
  map.addEventListener("click", function (e) {
    var s = e.target.closest ? e.target.closest(".seat") : null;
    if (s) { toggle(s); return; }
    var a = e.target.closest ? e.target.closest(".area") : null;
    if (a) area(a);
  });
  map.addEventListener("keydown", function (e) {
    var s = e.target;
    if (s.classList && s.classList.contains("area") && (e.key === " " || e.key === "Enter")) {
      area(s); e.preventDefault(); return;
    }
    if (!s.classList || !s.classList.contains("seat")) return;
    var next = null;
    switch (e.key) {
      case " ": case "Enter": toggle(s); e.preventDefault(); return;
      case "ArrowRight": next = near(s, 1, 0); break;
      case "ArrowLeft": next = near(s, -1, 0); break;
      case "ArrowDown": next = near(s, 0, 1); break;
      case "ArrowUp": next = near(s, 0, -1); break;
      default: return;
    }
    e.preventDefault();
    if (next) next.focus();
  });
  // Live: each `seats` event lists seats whose state changed.
  var url = map.getAttribute("data-live");
  if (url && window.EventSource) {
    var es = new EventSource(url);
    es.addEventListener("seats", function (ev) {
      var data = JSON.parse(ev.data), lost = [];
      (data.seats || []).forEach(function (u) {
        var s = byId[u.id];
        if (!s) return;
        STATES.forEach(function (c) { s.classList.remove(c); });
        s.classList.add(u.status);
        s.setAttribute("aria-disabled", u.status === "available" ? "false" : "true");
        var t = s.querySelector("title");
        if (t) t.textContent = s.getAttribute("aria-label") + " (" + u.status + ")";
        if (u.status !== "available" && s.classList.contains("selected")) {
          s.classList.remove("selected");
          s.setAttribute("aria-checked", "false");
          lost.push(s.getAttribute("aria-label"));
        }
      });
      (data.areas || []).forEach(function (u) {
        var left = String(Math.max(0, u.available));
        var g = map.querySelector('.area[data-id="' + u.id + '"]');
        if (g) {
          g.classList.toggle("full", u.available <= 0);
          var n = g.querySelector(".available");
          if (n) n.textContent = left;
          var name = g.querySelector(".area-name");
          g.setAttribute("aria-label", (name ? name.textContent : "") + ": standing, " + left + " left");
        }
        var f = document.getElementById("area-" + u.id);
        var m = f && f.querySelector("legend .available");
        if (m) m.textContent = left;
      });
      if (lost.length) {
        sync();
        if (notice) notice.textContent = "Just taken by someone else: " + lost.join("; ");
      }
      map.setAttribute("data-updated", String(Date.now()));
    });
  }
  sync();
})();
