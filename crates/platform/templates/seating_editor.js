// The organizer's seat map editor: choose seats by pointer or keyboard;
// the flag form sends the chosen ones.
(function () {
  "use strict";
  var map = document.getElementById("editor-map");
  if (!map) return;
  var inputs = document.getElementById("chosen-inputs");
  var shown = document.getElementById("chosen");
  var seats = Array.prototype.slice.call(map.querySelectorAll(".seat"));
  function sync() {
    var p = seats.filter(function (s) { return s.classList.contains("selected"); });
    inputs.textContent = "";
    p.forEach(function (s) {
      var i = document.createElement("input");
      i.type = "hidden"; i.name = "seat"; i.value = s.getAttribute("data-id");
      inputs.appendChild(i);
    });
    shown.textContent = p.length ? p.map(function (s) { return s.getAttribute("aria-label"); }).join("; ") : "none";
  }
  function toggle(s) {
    var on = !s.classList.contains("selected");
    s.classList.toggle("selected", on);
    s.setAttribute("aria-checked", on ? "true" : "false");
    sync();
  }
  map.addEventListener("click", function (e) {
    var s = e.target.closest ? e.target.closest(".seat") : null;
    if (s) toggle(s);
  });
  map.addEventListener("keydown", function (e) {
    if ((e.key === " " || e.key === "Enter") && e.target.classList && e.target.classList.contains("seat")) {
      toggle(e.target);
      e.preventDefault();
    }
  });
  sync();
})();
