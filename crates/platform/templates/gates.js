// The gate forms' rule: in words as a refusal will say it, while it is typed,
// and built from plain conditions (the rule builder) so an organizer never has
// to type JSON. Plain ES5, no libraries; the page's CSP forbids inline styles,
// so looks come from class names in app.css ("Gate rule builder").
(function () {
  "use strict";

  // ---- The rule in words ------------------------------------------------
  // Every textarea with data-words="ID" shows its rule in the element ID; the
  // create form's #gate-rules without data-words uses #rule-words.

  function showWords(input, words) {
    if (!window.VoelgoedRules) { return; }
    var first = words.textContent;
    function show() {
      var text = input.value.trim();
      if (!text) { words.textContent = first; words.classList.remove("error"); return; }
      try {
        words.textContent = "In words: " + window.VoelgoedRules.describe(JSON.parse(text));
        words.classList.remove("error");
      } catch (e) {
        words.textContent = "Not a rule yet: " + e.message;
        words.classList.add("error");
      }
    }
    input.addEventListener("input", show);
    show();
  }

  function each(list, f) { Array.prototype.forEach.call(list, f); }

  each(document.querySelectorAll("textarea[data-words]"), function (t) {
    var w = document.getElementById(t.getAttribute("data-words"));
    if (w) { showWords(t, w); }
  });
  var plain = document.getElementById("gate-rules");
  var plainWords = document.getElementById("rule-words");
  if (plain && plainWords && !plain.hasAttribute("data-words")) { showWords(plain, plainWords); }

  // ---- The rule builder -------------------------------------------------
  // Mounts into each <div class="rule-builder" data-target="ID"> (ID: the rule
  // textarea it drives). Each row is one condition; all of them must hold
  // ("and"). Every change rewrites the textarea and fires "input" on it; a
  // rule typed or pre-filled there becomes rows again when every part is one
  // of the shapes below, else the builder steps aside ("edited as JSON").

  var MAX_NUMBER = 1000000;
  var MAX_PARTS = 200; // src/scanning/rules.rs MAX_NODES
  var DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
  var KINDS = [
    { kind: "before", option: "Only before a time of day", title: "Only before" },
    { kind: "from", option: "Only from a time of day", title: "Only from" },
    { kind: "per_day", option: "At most N entries per day", title: "Entries per day" },
    { kind: "total", option: "At most N entries in total", title: "Entries in total" },
    { kind: "gap", option: "At least N minutes between entries", title: "Time between entries" },
    { kind: "weekdays", option: "Only on some weekdays", title: "Only on these days" },
    { kind: "types", option: "Only some ticket types", title: "Only these ticket types" }
  ];
  // Defaults for a new row (weekdays and ticket types start unticked).
  var DEFAULTS = { before: 1020, from: 1080, per_day: 1, total: 1, gap: 30 };

  function kindInfo(kind) {
    for (var i = 0; i < KINDS.length; i++) { if (KINDS[i].kind === kind) { return KINDS[i]; } }
    return null;
  }

  function fact(name) { return { "var": name }; }

  // The JsonLogic for one condition. "At least N minutes between entries"
  // lets a ticket that never entered through: minutes_since_last_entry is
  // null then, and null compares as 0 (rules_table.json: "30 minutes apart,
  // never entered"). The guard reads entries_total, not the table's
  // {"!": minutes_since_last_entry}: that is 0 within a minute of an entry
  // too, and would let a second entry straight through.
  function conditionFor(kind, value) {
    switch (kind) {
      case "before": return { "<": [fact("minutes_of_day"), value] };
      case "from": return { ">=": [fact("minutes_of_day"), value] };
      case "per_day": return { "<": [fact("entries_today"), value] };
      case "total": return { "<": [fact("entries_total"), value] };
      case "gap": return { "or": [{ "!": fact("entries_total") }, { ">=": [fact("minutes_since_last_entry"), value] }] };
      case "weekdays": return { "in": [fact("weekday"), value] };
      case "types": return { "in": [fact("ticket_type_id"), value] };
    }
    return null;
  }

  // A JsonLogic operation as rules.js reads it (one key; operands a list or one value).
  function logic(v) { return window.VoelgoedRules.logic(v); }
  function isFact(node, name) {
    var l = logic(node);
    return l !== null && l.op === "var" && l.args.length === 1 && l.args[0] === name;
  }
  function whole(v, low, high) {
    return typeof v === "number" && isFinite(v) && Math.floor(v) === v && v >= low && v <= high;
  }
  function hasId(types, id) {
    for (var i = 0; i < types.length; i++) { if (types[i].id === id) { return true; } }
    return false;
  }

  // One condition as {kind, value}, or null when it isn't a builder shape.
  function parseCondition(c, types) {
    var l = logic(c);
    if (l === null) { return null; }
    var a = l.args;
    if ((l.op === "<" || l.op === ">=") && a.length === 2 && isFact(a[0], "minutes_of_day") && whole(a[1], 0, 1439)) {
      return { kind: l.op === "<" ? "before" : "from", value: a[1] };
    }
    if (l.op === "<" && a.length === 2 && whole(a[1], 1, MAX_NUMBER)) {
      if (isFact(a[0], "entries_today")) { return { kind: "per_day", value: a[1] }; }
      if (isFact(a[0], "entries_total")) { return { kind: "total", value: a[1] }; }
    }
    if (l.op === "or" && a.length === 2) {
      // The guarded gap: ours (entries_total) or rules_table.json's idiom.
      var guard = logic(a[0]), gap = logic(a[1]);
      if (guard !== null && guard.op === "!" && guard.args.length === 1 &&
          (isFact(guard.args[0], "entries_total") || isFact(guard.args[0], "minutes_since_last_entry")) &&
          gap !== null && gap.op === ">=" && gap.args.length === 2 &&
          isFact(gap.args[0], "minutes_since_last_entry") && whole(gap.args[1], 1, MAX_NUMBER)) {
        return { kind: "gap", value: gap.args[1] };
      }
      return null;
    }
    if (l.op === "in" && a.length === 2 && Array.isArray(a[1]) && a[1].length > 0) {
      var list = a[1], i;
      if (isFact(a[0], "weekday")) {
        var days = [];
        for (i = 0; i < list.length; i++) {
          if (!whole(list[i], 1, 7)) { return null; }
          if (days.indexOf(list[i]) === -1) { days.push(list[i]); }
        }
        return { kind: "weekdays", value: days.sort(function (x, y) { return x - y; }) };
      }
      if (isFact(a[0], "ticket_type_id")) {
        for (i = 0; i < list.length; i++) {
          if (typeof list[i] !== "string" || !hasId(types, list[i])) { return null; }
        }
        return { kind: "types", value: list.slice() };
      }
    }
    return null;
  }

  // The rows for a rule's text: [] when empty, null when it is not (only)
  // builder shapes and so stays JSON.
  function parseRule(text, types) {
    text = text.trim();
    if (!text) { return []; }
    var rule;
    try { rule = JSON.parse(text); } catch (e) { return null; }
    var l = logic(rule);
    var parts = l !== null && l.op === "and" ? l.args : [rule];
    if (parts.length === 0) { return null; }
    var rows = [];
    for (var i = 0; i < parts.length; i++) {
      var row = parseCondition(parts[i], types);
      if (row === null) { return null; }
      rows.push(row);
    }
    return rows;
  }

  // JSON on one line with a space after ":" and ",", as the placeholder.
  function compact(v) {
    if (Array.isArray(v)) { return "[" + v.map(compact).join(", ") + "]"; }
    if (v !== null && typeof v === "object") {
      return "{" + Object.keys(v).map(function (k) { return JSON.stringify(k) + ": " + compact(v[k]); }).join(", ") + "}";
    }
    return JSON.stringify(v);
  }
  function pretty(conditions) {
    if (conditions.length === 0) { return ""; }
    if (conditions.length === 1) { return compact(conditions[0]); }
    return "{\"and\": [\n  " + conditions.map(compact).join(",\n  ") + "\n]}";
  }
  // The parts src/scanning/rules.rs validate() counts (at most MAX_PARTS).
  function countParts(node) {
    var n = 1;
    if (Array.isArray(node)) {
      node.forEach(function (i) { n += countParts(i); });
    } else {
      var l = logic(node);
      if (l !== null) { l.args.forEach(function (a) { n += countParts(a); }); }
    }
    return n;
  }

  function toTime(m) {
    var h = Math.floor(m / 60), mm = m % 60;
    return (h < 10 ? "0" : "") + h + ":" + (mm < 10 ? "0" : "") + mm;
  }
  function fromTime(s) {
    var m = /^(\d{2}):(\d{2})/.exec(s || "");
    if (!m) { return null; }
    var h = parseInt(m[1], 10), mm = parseInt(m[2], 10);
    return h < 24 && mm < 60 ? h * 60 + mm : null;
  }
  function fromNumber(s) {
    s = (s || "").trim();
    if (!/^\d+$/.test(s)) { return null; }
    var n = parseInt(s, 10);
    return n >= 1 && n <= MAX_NUMBER ? n : null;
  }

  function el(tag, attrs, kids) {
    var e = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (k === "text") { e.textContent = attrs[k]; } else { e.setAttribute(k, attrs[k]); }
      });
    }
    (kids || []).forEach(function (k) {
      e.appendChild(typeof k === "string" ? document.createTextNode(k) : k);
    });
    return e;
  }

  function closest(node, tag) {
    for (var n = node.parentNode; n && n.nodeType === 1; n = n.parentNode) {
      if (n.tagName === tag) { return n; }
    }
    return null;
  }

  // The ticket types the form offers: its ticket_type_ids checkboxes' values
  // and label text.
  function ticketTypes(scope) {
    var types = [];
    each(scope.querySelectorAll("input[name=ticket_type_ids]"), function (box) {
      var label = closest(box, "LABEL") || (box.id ? document.querySelector("label[for='" + box.id + "']") : null);
      var name = label ? label.textContent.replace(/\s+/g, " ").trim() : "";
      if (box.value && !hasId(types, box.value)) { types.push({ id: box.value, name: name || box.value }); }
    });
    return types;
  }

  function mount(root) {
    if (root.getAttribute("data-ready") === "1") { return; }
    var target = document.getElementById(root.getAttribute("data-target") || "");
    if (!target) { return; }
    var form = closest(root, "FORM");
    var types = ticketTypes(form || document);
    var writing = false;

    root.textContent = "";
    root.setAttribute("role", "group");
    var title = el("p", { "class": "rule-title" }, [
      el("strong", { text: "Conditions" }), " ",
      el("span", { "class": "muted", text: "(all must hold for a ticket to enter; times are in the event's time zone)" })
    ]);
    var titleId = (target.id || "rule") + "-builder-title";
    title.id = titleId;
    root.setAttribute("aria-labelledby", titleId);
    var none = el("p", { "class": "muted rule-none", text: "No conditions yet." });
    var rows = el("div", { "class": "rule-rows" });
    var tooLarge = el("p", { "class": "error rule-too-large", hidden: "" });
    var kindSelect = el("select", { "class": "rule-kind" });
    KINDS.forEach(function (k) {
      if (k.kind === "types" && types.length === 0) { return; }
      kindSelect.appendChild(el("option", { value: k.kind, text: k.option }));
    });
    var addButton = el("button", { type: "button", "class": "rule-add secondary" }, [
      el("span", { "aria-hidden": "true", text: "+ " }), "Add condition"
    ]);
    var addBar = el("div", { "class": "rule-add-bar" }, [
      el("label", { "class": "rule-inline" }, ["Condition to add", kindSelect]),
      addButton
    ]);
    var jsonNote = null;
    [title, none, rows, tooLarge, addBar].forEach(function (n) { root.appendChild(n); });

    function checkBox(cls, value, label, checked) {
      var box = el("input", { type: "checkbox", "class": cls, value: value });
      box.checked = !!checked;
      return el("label", { "class": "rule-check" }, [box, " " + label]);
    }

    function makeRow(kind, value) {
      var info = kindInfo(kind);
      var row = el("fieldset", { "class": "rule-row", "data-kind": kind }, [el("legend", { text: info.title })]);
      var input;
      if (kind === "before" || kind === "from") {
        input = el("input", { type: "time", "class": "rule-time", step: "60" });
        input.value = value === undefined || value === null ? "" : toTime(value);
        row.appendChild(el("label", { "class": "rule-inline" }, ["Time of day", input]));
      } else if (kind === "per_day" || kind === "total" || kind === "gap") {
        input = el("input", { type: "number", "class": "rule-number", min: "1", max: String(MAX_NUMBER), step: "1", inputmode: "numeric" });
        input.value = value === undefined || value === null ? "" : String(value);
        var after = kind === "per_day" ? "entries a day" : kind === "total" ? "entries in total" : "minutes between entries";
        row.appendChild(el("label", { "class": "rule-inline" }, [kind === "gap" ? "At least" : "At most", input, after]));
      } else if (kind === "weekdays") {
        var days = el("div", { "class": "rule-checks" });
        DAYS.forEach(function (d, i) {
          days.appendChild(checkBox("rule-weekday", String(i + 1), d, value && value.indexOf(i + 1) !== -1));
        });
        row.appendChild(days);
      } else {
        var boxes = el("div", { "class": "rule-checks" });
        types.forEach(function (t) {
          boxes.appendChild(checkBox("rule-type", t.id, t.name, value && value.indexOf(t.id) !== -1));
        });
        row.appendChild(boxes);
      }
      row.appendChild(el("button", {
        type: "button", "class": "rule-remove secondary", "aria-label": "Remove condition: " + info.title.toLowerCase()
      }, ["Remove"]));
      if (kind === "gap") {
        row.appendChild(el("p", { "class": "muted rule-help", text: "A ticket's first entry is always let through." }));
      }
      return row;
    }

    // A row's value, or null while it is incomplete; marks what is missing.
    function readRow(row) {
      var kind = row.getAttribute("data-kind"), value = null, problem = "", field = null;
      if (kind === "before" || kind === "from") {
        field = row.querySelector("input.rule-time");
        value = fromTime(field.value);
        if (value === null) { problem = "Choose a time, or remove this condition."; }
      } else if (kind === "per_day" || kind === "total" || kind === "gap") {
        field = row.querySelector("input.rule-number");
        value = fromNumber(field.value);
        if (value === null) { problem = "Enter a whole number from 1 to " + MAX_NUMBER + ", or remove this condition."; }
      } else {
        var boxes = row.querySelectorAll(kind === "weekdays" ? "input.rule-weekday" : "input.rule-type");
        field = boxes[0] || null;
        var picked = [];
        each(boxes, function (b) {
          if (b.checked) { picked.push(kind === "weekdays" ? parseInt(b.value, 10) : b.value); }
        });
        value = picked.length ? picked : null;
        if (value === null) {
          problem = kind === "weekdays" ? "Tick at least one day, or remove this condition." : "Tick at least one ticket type, or remove this condition.";
        }
      }
      // The form won't submit with a half-made condition: the browser points at it.
      if (field) {
        field.setCustomValidity(problem);
        if (problem) { field.setAttribute("aria-invalid", "true"); } else { field.removeAttribute("aria-invalid"); }
      }
      var note = row.querySelector(".rule-problem");
      if (problem && !note) {
        note = el("p", { "class": "rule-problem" });
        row.appendChild(note);
      }
      if (note) {
        if (problem) { note.textContent = problem; } else { row.removeChild(note); }
      }
      return value === null ? null : conditionFor(kind, value);
    }

    function conditions() {
      var out = [];
      each(rows.querySelectorAll(".rule-row"), function (row) {
        var c = readRow(row);
        if (c !== null) { out.push(c); }
      });
      return out;
    }

    function refresh() {
      var list = conditions();
      var parts = countParts(list.length === 1 ? list[0] : { "and": list });
      none.hidden = jsonNote !== null || rows.children.length > 0;
      tooLarge.hidden = parts <= MAX_PARTS;
      tooLarge.textContent = parts > MAX_PARTS
        ? "This rule has " + parts + " parts; a gate takes at most " + MAX_PARTS + ". Remove some conditions or ticket types."
        : "";
      return list;
    }

    // Rewrites the textarea from the rows and tells the words line.
    function write() {
      target.value = pretty(refresh());
      writing = true;
      try {
        var ev;
        try { ev = new Event("input", { bubbles: true }); } catch (e) {
          ev = document.createEvent("Event");
          ev.initEvent("input", true, false);
        }
        target.dispatchEvent(ev);
      } finally {
        writing = false;
      }
    }

    function setJsonOnly(on) {
      if (on && jsonNote === null) {
        jsonNote = el("p", { "class": "rule-json-only" }, [
          "This rule is edited as JSON below: it has parts the builder does not show. Empty the box to build a rule here instead."
        ]);
        root.insertBefore(jsonNote, rows);
      } else if (!on && jsonNote !== null) {
        root.removeChild(jsonNote);
        jsonNote = null;
      }
      rows.hidden = on;
      addBar.hidden = on;
    }

    // The textarea's rule as rows, without touching the textarea.
    function load() {
      var parsed = parseRule(target.value, types);
      rows.textContent = "";
      setJsonOnly(parsed === null);
      (parsed || []).forEach(function (r) { rows.appendChild(makeRow(r.kind, r.value)); });
      refresh();
    }

    addButton.addEventListener("click", function () {
      var kind = kindSelect.value;
      if (!kindInfo(kind)) { return; }
      var row = makeRow(kind, DEFAULTS.hasOwnProperty(kind) ? DEFAULTS[kind] : null);
      rows.appendChild(row);
      write();
      var first = row.querySelector("input");
      if (first) { first.focus(); }
    });
    root.addEventListener("click", function (e) {
      var t = e.target;
      var button = t && t.nodeType === 1 && t.tagName === "BUTTON" ? t : closest(t, "BUTTON");
      if (!button || !button.classList.contains("rule-remove")) { return; }
      var row = closest(button, "FIELDSET");
      if (!row || row.parentNode !== rows) { return; }
      rows.removeChild(row);
      write();
      kindSelect.focus();
    });
    function changed(e) {
      var t = e.target;
      if (t && t.tagName === "INPUT" && closest(t, "FIELDSET") && closest(t, "FIELDSET").parentNode === rows) { write(); }
    }
    root.addEventListener("input", changed);
    root.addEventListener("change", changed);
    target.addEventListener("input", function () { if (!writing) { load(); } });

    load();
    root.setAttribute("data-ready", "1");
  }

  if (window.VoelgoedRules) {
    each(document.querySelectorAll("div.rule-builder[data-target]"), mount);
  }
})();
