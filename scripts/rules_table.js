#!/usr/bin/env node
// Runs the shared gate-rule table (crates/platform/src/scanning/rules_table.json)
// through the scanner app's templates/rules.js on the vendored json-logic-js.
// The server runs the same table in `cargo test` (scanning::rules::tests), so
// both sides give the same answer and the same words for every row.
// Usage: node scripts/rules_table.js   (exits 1 if any row disagrees)
"use strict";

const path = require("path");

const platform = path.join(__dirname, "..", "crates", "platform");
globalThis.jsonLogic = require(path.join(platform, "templates", "vendor", "logic.js"));
const rules = require(path.join(platform, "templates", "rules.js"));
const rows = require(path.join(platform, "src", "scanning", "rules_table.json"));

const VARIABLES = ["ticket_type_id", "now", "minutes_of_day", "weekday", "entries_today", "entries_total", "minutes_since_last_entry"];
const show = JSON.stringify;
let failed = 0;

for (const row of rows) {
  const problems = [];
  const missing = VARIABLES.filter((v) => !Object.prototype.hasOwnProperty.call(row.facts, v));
  if (missing.length) problems.push(`facts lack ${missing.join(", ")}`);
  const result = rules.evaluate(row.rule, row.facts);
  if (result !== row.result) problems.push(`evaluate: got ${show(result)}, want ${show(row.result)}`);
  const explanation = rules.explain(row.rule, row.facts);
  if (explanation !== row.explanation) problems.push(`explain: got ${show(explanation)}, want ${show(row.explanation)}`);
  if (Object.prototype.hasOwnProperty.call(row, "describe")) {
    const words = rules.describe(row.rule);
    if (words !== row.describe) problems.push(`describe: got ${show(words)}, want ${show(row.describe)}`);
  }
  if (problems.length) {
    failed += 1;
    console.log(`FAIL ${row.name}\n  rule: ${show(row.rule)}\n  ${problems.join("\n  ")}`);
  }
}

console.log(`${rows.length - failed} of ${rows.length} rows agree`);
process.exit(failed ? 1 : 0);
