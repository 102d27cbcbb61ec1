// Gate rules in the scanner app: whether a scan passes the gate's JsonLogic
// rule, and in words why not. The server's src/scanning/rules.rs is the same
// walker; src/scanning/rules_table.json checks that both give the same answer
// and the same words (node scripts/rules_table.js, cargo test).
//
// evaluate() is json-logic-js itself (vendor/logic.js, the global jsonLogic),
// so the truth comes from the maintained library; explain() and describe()
// only choose words. A rule that throws refuses, as on the server.
(function (root) {
  "use strict";

  var MAX_EVAL_DEPTH = 128;
  var TOO_DEEP = "the gate's rule (too deeply nested to show)";
  var BIG = 1e15; // counts above this are shown as raw JSON, as in Rust
  var DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
  var NORMAL = { "==": "==", "===": "==", "!=": "!=", "!==": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">=" };
  var MIRROR = { "==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<=" };
  var WHEN = { "<": "only before", "<=": "only until", ">": "only after", ">=": "only from", "==": "only at", "!=": "not at" };

  function has(o, k) { return Object.prototype.hasOwnProperty.call(o, k); }

  // A JsonLogic operation: one key; its operands a list or a single value.
  function logic(v) {
    if (v === null || typeof v !== "object" || Array.isArray(v)) { return null; }
    var keys = Object.keys(v);
    if (keys.length !== 1) { return null; }
    var raw = v[keys[0]];
    return { op: keys[0], args: Array.isArray(raw) ? raw : [raw] };
  }

  function tooDeep(v, left) {
    if (v === null || typeof v !== "object") { return false; }
    if (left === 0) { return true; }
    var kids = Array.isArray(v) ? v : Object.keys(v).map(function (k) { return v[k]; });
    return kids.some(function (k) { return tooDeep(k, left - 1); });
  }

  function evaluate(rule, facts) {
    if (tooDeep(rule, MAX_EVAL_DEPTH) || tooDeep(facts, MAX_EVAL_DEPTH)) { return false; }
    try {
      return root.jsonLogic.truthy(root.jsonLogic.apply(rule, facts));
    } catch (e) {
      return false;
    }
  }

  // A top-level "or" offers ways in; each way is its "and"-ed conditions
  // (nested "and"s flattened, a nested "or" kept as one condition).
  function ways(node) {
    var l = logic(node);
    if (l && l.op === "or" && l.args.length > 0) {
      return l.args.reduce(function (acc, a) { return acc.concat(ways(a)); }, []);
    }
    if (l && l.op === "and" && l.args.length === 1) { return ways(l.args[0]); }
    return [conditions(node)];
  }

  function conditions(node) {
    var l = logic(node);
    if (l && l.op === "and" && l.args.length > 0) {
      return l.args.reduce(function (acc, a) { return acc.concat(conditions(a)); }, []);
    }
    return [node];
  }

  function describeWays(rule) {
    return ways(rule).map(function (way) {
      return way.map(function (c) { return words(c, null); }).join(" and ");
    }).join(" or ");
  }

  function isExemption(way) {
    return way.every(function (c) {
      var l = logic(c);
      return l !== null && l.op === "!" && l.args.length === 1 && varName(l.args[0]) !== null;
    });
  }

  // The failed conditions of the way in with the fewest failures (ties: the
  // first); "no earlier entry" exemptions only if every way is one.
  function explainFailure(rule, facts) {
    var all = ways(rule);
    var failed = all.map(function (way) {
      return way.filter(function (c) { return !evaluate(c, facts); });
    });
    function closest(skipExemptions) {
      var best = null;
      all.forEach(function (way, i) {
        if (failed[i].length === 0 || (skipExemptions && isExemption(way))) { return; }
        if (best === null || failed[i].length < best.length) { best = failed[i]; }
      });
      return best;
    }
    var best = closest(true) || closest(false);
    if (best === null) { return generic(rule); }
    return english(best.map(function (c) { return words(c, facts); }), "and");
  }

  function explain(rule, facts) {
    if (evaluate(rule, facts)) { return null; }
    if (tooDeep(rule, MAX_EVAL_DEPTH)) { return TOO_DEEP; }
    return explainFailure(rule, facts);
  }

  function describe(rule) {
    if (tooDeep(rule, MAX_EVAL_DEPTH)) { return TOO_DEEP; }
    return describeWays(rule);
  }

  // One condition in words; with facts, the words for its failure.
  function words(leaf, facts) {
    var l = logic(leaf);
    if (l && (l.op === "and" || l.op === "or") && l.args.length > 0) {
      return facts !== null ? explainFailure(leaf, facts) : "(" + describeWays(leaf) + ")";
    }
    if (l && l.op === "!!" && l.args.length === 1) { return words(l.args[0], facts); }
    if (l && l.op === "!" && l.args.length === 1) {
      var v = varName(l.args[0]);
      if (v === "entries_today" || v === "entries_total" || v === "minutes_since_last_entry") {
        return noEarlierEntry(v, facts);
      }
      return "not (" + describeWays(l.args[0]) + ")";
    }
    if (leaf === true) { return "always"; }
    if (leaf === false) { return "never"; }
    var c = comparison(leaf);
    var text = c === null ? null : compared(c, facts);
    return text === null ? generic(leaf) : text;
  }

  function generic(leaf) { return "the gate's rule " + JSON.stringify(leaf); }

  function varName(node) {
    var l = logic(node);
    return l && l.op === "var" && typeof l.args[0] === "string" ? l.args[0] : null;
  }

  function isLiteral(v) { return v === null || typeof v !== "object"; }

  // A condition comparing one fact with literals, the fact on the left.
  function comparison(leaf) {
    var l = logic(leaf);
    if (l === null) { return null; }
    var a = l.args, v;
    if ((l.op === "<" || l.op === "<=") && a.length === 3) {
      v = varName(a[1]);
      return v === null ? null : { kind: "between", v: v, inclusive: l.op === "<=", low: a[0], high: a[2] };
    }
    if (l.op === "in" && a.length === 2 && Array.isArray(a[1])) {
      v = varName(a[0]);
      return v === null ? null : { kind: "in", v: v, list: a[1] };
    }
    if (a.length !== 2 || !has(NORMAL, l.op)) { return null; }
    var op = NORMAL[l.op], left = varName(a[0]), right = varName(a[1]);
    if (left !== null && right === null && isLiteral(a[1])) { return { kind: "cmp", v: left, op: op, lit: a[1] }; }
    if (left === null && right !== null && isLiteral(a[0])) { return { kind: "cmp", v: right, op: MIRROR[op], lit: a[0] }; }
    return null;
  }

  // A JSON whole number from 0 to max, else null.
  function whole(v, max) {
    return typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= max ? v : null;
  }
  function time(v) {
    var n = whole(v, 1440);
    if (n === null) { return null; }
    var h = Math.floor(n / 60), m = n % 60;
    return (h < 10 ? "0" : "") + h + ":" + (m < 10 ? "0" : "") + m;
  }
  function day(v) { var d = whole(v, 7); return d !== null && d >= 1 ? d : null; }
  function days(first, last) {
    if (first === null || last === null || !(1 <= first && first <= last && last <= 7)) { return null; }
    return first === last ? "only on " + DAYS[first - 1] : "only " + DAYS[first - 1] + " to " + DAYS[last - 1];
  }
  function stamp(s) {
    var m = /^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2})/.exec(s);
    return m ? m[1] + " " + m[2] : s;
  }
  function fact(facts, name) {
    return facts !== null && typeof facts === "object" && !Array.isArray(facts) && has(facts, name) ? facts[name] : undefined;
  }
  function count(facts, name) { var n = whole(fact(facts, name), BIG); return n !== null && n > 0 ? n : null; }
  function times(n) { return n === 1 ? "once" : n === 2 ? "twice" : n + " times"; }
  function minutes(n) { return n === 1 ? "1 minute" : n + " minutes"; }
  function lastEntry(facts) {
    var m = whole(fact(facts, "minutes_since_last_entry"), BIG);
    return m === null ? "" : " (last entry " + minutes(m) + " ago)";
  }
  function noEarlierEntry(v, facts) {
    var today = v === "entries_today" ? " today" : "";
    if (facts === null) { return "no earlier entry" + today; }
    if (v === "minutes_since_last_entry") { return "already entered" + lastEntry(facts); }
    var done = count(facts, v);
    return done !== null ? "already entered " + times(done) + today : "no earlier entry" + today;
  }
  function english(items, conjunction) {
    if (items.length === 0) { return ""; }
    if (items.length === 1) { return items[0]; }
    if (items.length === 2) { return items[0] + " " + conjunction + " " + items[1]; }
    return items.slice(0, -1).join(", ") + ", " + conjunction + " " + items[items.length - 1];
  }

  // The words for a comparison, or null to fall back to raw JSON.
  function compared(c, facts) {
    var t, u, d, n;
    if (c.kind === "cmp" && c.v === "minutes_of_day") {
      t = time(c.lit);
      return t === null ? null : WHEN[c.op] + " " + t;
    }
    if (c.kind === "cmp" && c.v === "now") {
      return typeof c.lit === "string" ? WHEN[c.op] + " " + stamp(c.lit) : null;
    }
    if (c.kind === "between" && c.v === "minutes_of_day") {
      t = time(c.low); u = time(c.high);
      if (t === null || u === null) { return null; }
      return c.inclusive ? "only between " + t + " and " + u : "only after " + t + " and before " + u;
    }
    if (c.kind === "cmp" && c.v === "weekday") {
      d = day(c.lit);
      if (d === null) { return null; }
      switch (c.op) {
        case "==": return days(d, d);
        case "!=": return "not on " + DAYS[d - 1];
        case "<": return days(1, d - 1);
        case "<=": return days(1, d);
        case ">": return days(d + 1, 7);
        default: return days(d, 7);
      }
    }
    if (c.kind === "between" && c.v === "weekday") {
      t = day(c.low); u = day(c.high);
      if (t === null || u === null) { return null; }
      return c.inclusive ? days(t, u) : (u >= 1 ? days(t + 1, u - 1) : null);
    }
    if (c.kind === "in" && c.v === "weekday") {
      var names = c.list.map(function (v) { var x = day(v); return x === null ? null : DAYS[x - 1]; });
      if (names.length === 0 || names.indexOf(null) !== -1) { return null; }
      return "only on " + english(names, "or");
    }
    if (c.kind === "cmp" && (c.v === "entries_today" || c.v === "entries_total")) {
      n = whole(c.lit, BIG);
      if (n === null) { return null; }
      var perDay = c.v === "entries_today" ? " a day" : "", today = c.v === "entries_today" ? " today" : "";
      var most;
      if (c.op === "<") { most = n; }
      else if (c.op === "<=") { most = n + 1; }
      else if (c.op === "==" && n === 0) { most = 1; }
      else if (c.op === ">") { return "only after entering at least " + times(n + 1) + today; }
      else if (c.op === ">=") { return "only after entering at least " + times(n) + today; }
      else { return null; }
      var done = facts === null ? null : count(facts, c.v);
      if (done !== null) { return "already entered " + times(done) + today; }
      return "at most " + most + " " + (most === 1 ? "entry" : "entries") + perDay;
    }
    if (c.kind === "cmp" && c.v === "minutes_since_last_entry" && (c.op === ">" || c.op === ">=")) {
      n = whole(c.lit, BIG);
      if (n === null) { return null; }
      var more = c.op === ">" ? "more than " : "";
      if (facts === null) { return (more ? "more than " : "at least ") + minutes(n) + " between entries"; }
      return "only " + more + minutes(n) + " after the last entry" + lastEntry(facts);
    }
    if (c.v === "ticket_type_id") {
      if (c.kind === "cmp" && c.op === "==") { return "only for one ticket type"; }
      if (c.kind === "cmp" && c.op === "!=") { return "not for this ticket type"; }
      if (c.kind === "in") { return c.list.length === 1 ? "only for one ticket type" : "only for some ticket types"; }
    }
    return null;
  }

  var api = { evaluate: evaluate, explain: explain, describe: describe, logic: logic };
  root.VoelgoedRules = api;
  if (typeof module !== "undefined" && module.exports) { module.exports = api; }
})(typeof window !== "undefined" ? window : globalThis);
