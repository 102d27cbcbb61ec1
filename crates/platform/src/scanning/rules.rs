//! Gate rules: the JsonLogic rule an organizer attaches to a gate, checked at
//! every scan, and the words that say why a scan was refused.
//!
//! Three promises shape this module:
//! - **One truth, two runtimes.** The scanner web app runs the same rule with
//!   json-logic-js (`templates/rules.js`), so [`evaluate`] follows
//!   json-logic-js 2.x to the letter, JavaScript's coercions included
//!   (`"1" == 1`, `null < 1`, `[]` is falsy). One table, `rules_table.json`,
//!   checks both sides: the tests below and `scripts/rules_table.js`.
//! - **Refusals speak.** Gate staff can't read JSON. [`explain`] names the
//!   conditions that failed, in the organizer's terms ("only before 17:00"),
//!   for the way in the ticket holder came closest to.
//! - **Stored rules stay small and known.** [`validate`] admits only the
//!   operators and facts below, so every condition can be put into words and a
//!   rule can't grow into a program.
//!
//! Where `evaluate` departs from json-logic-js, only for rules `validate`
//! rejects: operators outside the supported set, and rules or facts nested
//! more than 128 deep, are refused (false) instead of computed; `var` sees
//! only the facts' own data (no prototype properties, and no lone UTF-16
//! surrogates when indexing into text).

use std::{borrow::Cow, cmp::Ordering};

use serde_json::Value;

/// The facts a rule may read with `var`: `ticket_type_id` (uuid), `now`
/// (RFC 3339), `minutes_of_day` (0..1439, event time zone), `weekday`
/// (1 = Monday .. 7 = Sunday), `entries_today` and `entries_total` (entries
/// before this scan), `minutes_since_last_entry` (null if never entered).
pub const VARIABLES: [&str; 7] = [
    "ticket_type_id",
    "now",
    "minutes_of_day",
    "weekday",
    "entries_today",
    "entries_total",
    "minutes_since_last_entry",
];

const OPERATORS: [&str; 22] = [
    "==", "===", "!=", "!==", "<", "<=", ">", ">=", "and", "or", "!", "!!", "in", "var", "if", "+",
    "-", "*", "/", "%", "min", "max",
];
const MAX_DEPTH: usize = 12;
const MAX_NODES: usize = 200;
/// Evaluation recurses; this bounds the stack for rules and facts that never
/// went through `validate`.
const MAX_EVAL_DEPTH: usize = 128;
const TOO_DEEP: &str = "the gate's rule (too deeply nested to show)";
/// Counts above this are worded as raw JSON, so Rust and JS print them alike.
const BIG: f64 = 1e15;
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Checks a rule before it is stored. The message names the problem so the
/// organizer's editor can show it as the error for the field `rules`.
pub fn validate(rule: &Value) -> Result<(), String> {
    match rule {
        Value::Bool(_) => Ok(()),
        Value::Object(_) => check(rule, 0, &mut 0),
        _ => Err("a rule must be true, false or one operator object, \
                  such as {\"<\": [{\"var\": \"minutes_of_day\"}, 1020]}"
            .into()),
    }
}

/// `depth` counts operators only: a literal list adds no level.
fn check(node: &Value, depth: usize, nodes: &mut usize) -> Result<(), String> {
    *nodes += 1;
    if *nodes > MAX_NODES {
        return Err(format!(
            "the rule is too large: more than {MAX_NODES} parts"
        ));
    }
    let Value::Object(map) = node else {
        return match node {
            Value::Array(items) => items.iter().try_for_each(|i| check(i, depth, nodes)),
            _ => Ok(()),
        };
    };
    let Some((op, args)) = logic(node) else {
        return Err(format!(
            "each object in a rule must be one operator with its operands, \
             such as {{\"<\": [a, b]}}; found an object with {} keys",
            map.len()
        ));
    };
    if depth >= MAX_DEPTH {
        return Err(format!(
            "the rule is nested too deeply: at most {MAX_DEPTH} levels"
        ));
    }
    if !OPERATORS.contains(&op) {
        let known = OPERATORS.join(" ");
        return Err(format!(
            "unknown operator \"{op}\"; the supported ones are {known}"
        ));
    }
    let (min, max) = match op {
        "==" | "===" | "!=" | "!==" | ">" | ">=" | "in" | "/" | "%" => (2, 2),
        "<" | "<=" => (2, 3),
        "!" | "!!" => (1, 1),
        "var" | "-" => (1, 2),
        "if" => (3, usize::MAX),
        _ => (1, usize::MAX),
    };
    let n = args.len();
    if n < min || n > max {
        let wanted = match (min, max) {
            (min, usize::MAX) => format!("at least {min} operands"),
            (1, 1) => "exactly 1 operand".into(),
            (min, max) if min == max => format!("exactly {min} operands"),
            (min, max) => format!("{min} or {max} operands"),
        };
        return Err(format!("\"{op}\" takes {wanted}, found {n}"));
    }
    if op == "if" && n.is_multiple_of(2) {
        return Err(format!(
            "\"if\" takes a condition and a result per branch plus a final else \
             (an odd number of operands), found {n}"
        ));
    }
    if op == "var" {
        match args.first() {
            Some(Value::String(name)) if VARIABLES.contains(&name.as_str()) => {}
            Some(Value::String(name)) => {
                let known = VARIABLES.join(", ");
                return Err(format!("unknown fact \"{name}\"; a rule can read {known}"));
            }
            _ => return Err("\"var\" takes a fact's name, such as {\"var\": \"weekday\"}".into()),
        }
    }
    args.iter().try_for_each(|a| check(a, depth + 1, nodes))
}

/// A JsonLogic operation: an object with exactly one key, whose operands are
/// a list or, as a shorthand, a single value.
fn logic(node: &Value) -> Option<(&str, &[Value])> {
    let Value::Object(map) = node else {
        return None;
    };
    let (op, raw) = map.iter().next().filter(|_| map.len() == 1)?;
    let args = match raw {
        Value::Array(items) => items.as_slice(),
        one => std::slice::from_ref(one),
    };
    Some((op, args))
}

/// Whether the rule lets this scan through: JsonLogic truthiness of its
/// result. A rule that throws in json-logic-js (e.g. an unknown operator)
/// refuses, as the scanner app does.
pub fn evaluate(rule: &Value, facts: &Value) -> bool {
    !too_deep(rule, MAX_EVAL_DEPTH)
        && !too_deep(facts, MAX_EVAL_DEPTH)
        && apply(rule, facts).is_ok_and(|v| truthy(&v))
}

fn too_deep(v: &Value, left: usize) -> bool {
    match v {
        Value::Array(items) => left == 0 || items.iter().any(|i| too_deep(i, left - 1)),
        Value::Object(map) => left == 0 || map.values().any(|i| too_deep(i, left - 1)),
        _ => false,
    }
}

/// A JavaScript value, as json-logic-js sees it while evaluating.
#[derive(Clone, Debug)]
enum Val<'a> {
    Undefined,
    Null,
    Bool(bool),
    Num(f64),
    Str(Cow<'a, str>),
    /// A list built while evaluating (a literal list's operands): a new
    /// object in JavaScript, so identical, and loosely equal, to nothing.
    List(Vec<Val<'a>>),
    /// A list or object of the rule or the facts: JavaScript compares these
    /// by identity, so two reads of the same fact are equal.
    Json(&'a Value),
}

/// A JavaScript exception: `evaluate` treats it as a refusal.
struct Thrown;

static UNDEFINED: Val<'static> = Val::Undefined;

impl<'a> Val<'a> {
    fn from_json(v: &'a Value) -> Self {
        match v {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => Val::Num(n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => Val::Str(Cow::Borrowed(s)),
            _ => Val::Json(v),
        }
    }
}

/// json-logic-js's `apply`, operator by operator.
fn apply<'a>(node: &'a Value, data: &'a Value) -> Result<Val<'a>, Thrown> {
    let Some((op, args)) = logic(node) else {
        return Ok(match node {
            Value::Array(items) => Val::List(
                items
                    .iter()
                    .map(|i| apply(i, data))
                    .collect::<Result<_, _>>()?,
            ),
            other => Val::from_json(other),
        });
    };
    match op {
        "if" | "?:" => {
            let mut i = 0;
            while i + 1 < args.len() {
                if truthy(&apply(&args[i], data)?) {
                    return apply(&args[i + 1], data);
                }
                i += 2;
            }
            return args.get(i).map_or(Ok(Val::Null), |last| apply(last, data));
        }
        // Both return the deciding operand itself, not a boolean.
        "and" | "or" => {
            let mut current = Val::Undefined;
            for arg in args {
                current = apply(arg, data)?;
                if truthy(&current) == (op == "or") {
                    break;
                }
            }
            return Ok(current);
        }
        _ => {}
    }
    let vals = args
        .iter()
        .map(|a| apply(a, data))
        .collect::<Result<Vec<_>, _>>()?;
    let nth = |i: usize| vals.get(i).unwrap_or(&UNDEFINED);
    let (a, b, c) = (nth(0), nth(1), nth(2));
    let ordered = |x: &Val, y: &Val, want: Ordering| match compare(x, y) {
        Some(Ordering::Equal) => op.ends_with('='),
        got => got == Some(want),
    };
    Ok(match op {
        "==" => Val::Bool(loose_eq(a, b)),
        "===" => Val::Bool(strict_eq(a, b)),
        "!=" => Val::Bool(!loose_eq(a, b)),
        "!==" => Val::Bool(!strict_eq(a, b)),
        ">" | ">=" => Val::Bool(ordered(a, b, Ordering::Greater)),
        "<" | "<=" => Val::Bool(
            ordered(a, b, Ordering::Less)
                && (matches!(c, Val::Undefined) || ordered(b, c, Ordering::Less)),
        ),
        "!!" => Val::Bool(truthy(a)),
        "!" => Val::Bool(!truthy(a)),
        "in" => Val::Bool(contains(b, a)?),
        "var" => lookup(a, b, data),
        // `+` and `*` go through parseFloat, the others through Number().
        "+" => Val::Num(
            vals.iter()
                .fold(0.0, |acc, v| positive_zero(acc) + parse_float(v)),
        ),
        "*" => match vals.split_first() {
            None => return Err(Thrown), // reduce of an empty list throws
            Some((first, [])) => first.clone(),
            Some((first, rest)) => {
                let mut acc = parse_float(first);
                for (i, v) in rest.iter().enumerate() {
                    acc = if i == 0 { acc } else { positive_zero(acc) } * parse_float(v);
                }
                Val::Num(acc)
            }
        },
        "-" if matches!(b, Val::Undefined) => Val::Num(-to_number(a)),
        "-" => Val::Num(to_number(a) - to_number(b)),
        "/" => Val::Num(to_number(a) / to_number(b)),
        "%" => Val::Num(to_number(a) % to_number(b)),
        "min" | "max" => Val::Num(extreme(&vals, op == "min")),
        _ => return Err(Thrown),
    })
}

/// JsonLogic's truthiness: JavaScript's, except that an empty list is false.
fn truthy(v: &Val) -> bool {
    match v {
        Val::Undefined | Val::Null => false,
        Val::Bool(b) => *b,
        Val::Num(n) => *n != 0.0 && !n.is_nan(),
        Val::Str(s) => !s.is_empty(),
        Val::List(items) => !items.is_empty(),
        Val::Json(Value::Array(items)) => !items.is_empty(),
        Val::Json(_) => true,
    }
}

fn strict_eq(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Undefined, Val::Undefined) | (Val::Null, Val::Null) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Num(x), Val::Num(y)) => x == y,
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::Json(x), Val::Json(y)) => std::ptr::eq(*x, *y),
        _ => false,
    }
}

/// JavaScript's `==` (the Abstract Equality Comparison).
fn loose_eq(a: &Val, b: &Val) -> bool {
    use Val::{Bool, Json, List, Null, Num, Str, Undefined};
    let number = |x: bool| Num(f64::from(u8::from(x)));
    match (a, b) {
        (Undefined | Null, Undefined | Null) => true,
        (Undefined | Null, _) | (_, Undefined | Null) => false,
        (Num(_), Num(_)) | (Str(_), Str(_)) | (Bool(_), Bool(_)) => strict_eq(a, b),
        (List(_) | Json(_), List(_) | Json(_)) => strict_eq(a, b),
        (Num(x), Str(_)) => *x == to_number(b),
        (Str(_), Num(y)) => to_number(a) == *y,
        (Bool(x), _) => loose_eq(&number(*x), b),
        (_, Bool(y)) => loose_eq(a, &number(*y)),
        (List(_) | Json(_), _) => loose_eq(&Str(to_js_string(a).into()), b),
        (_, List(_) | Json(_)) => loose_eq(a, &Str(to_js_string(b).into())),
    }
}

/// JavaScript's relational comparison: two texts compare by UTF-16 code
/// units, anything else as numbers; `None` when a NaN makes every answer false.
fn compare(a: &Val, b: &Val) -> Option<Ordering> {
    match (primitive(a), primitive(b)) {
        (Val::Str(x), Val::Str(y)) => Some(x.encode_utf16().cmp(y.encode_utf16())),
        (x, y) => to_number(&x).partial_cmp(&to_number(&y)),
    }
}

/// JavaScript's ToPrimitive: lists and objects become text.
fn primitive<'a>(v: &Val<'a>) -> Val<'a> {
    match v {
        Val::List(_) | Val::Json(_) => Val::Str(to_js_string(v).into()),
        other => other.clone(),
    }
}

/// json-logic-js's `in`: `b.indexOf(a)` on a list (by `===`) or a text.
fn contains(hay: &Val, needle: &Val) -> Result<bool, Thrown> {
    Ok(match hay {
        Val::Str(s) => !s.is_empty() && s.contains(to_js_string(needle).as_str()),
        Val::List(items) => items.iter().any(|i| strict_eq(i, needle)),
        Val::Json(Value::Array(items)) => {
            items.iter().any(|i| strict_eq(&Val::from_json(i), needle))
        }
        // A fact object with its own `indexOf` key: calling it throws.
        Val::Json(Value::Object(map)) if map.contains_key("indexOf") => return Err(Thrown),
        _ => false,
    })
}

/// json-logic-js's `var`: a dotted path into the facts; a missing value gives
/// the default, or null (a present null stays null).
fn lookup<'a>(path: &Val<'a>, default: &Val<'a>, data: &'a Value) -> Val<'a> {
    let not_found = match default {
        Val::Undefined => Val::Null,
        other => other.clone(),
    };
    if matches!(path, Val::Undefined | Val::Null) || matches!(path, Val::Str(s) if s.is_empty()) {
        return Val::from_json(data);
    }
    let mut current = Val::from_json(data);
    for key in to_js_string(path).split('.') {
        if matches!(current, Val::Undefined | Val::Null) {
            return not_found;
        }
        current = match &current {
            Val::Json(json) => json_property(json, key),
            Val::Str(s) => text_property(s, key),
            _ => Val::Undefined,
        };
        if matches!(current, Val::Undefined) {
            return not_found;
        }
    }
    current
}

/// A canonical array index ("0", "12"; not "01" or "+1"), as JS reads keys.
fn index(key: &str) -> Option<usize> {
    let i = key
        .parse::<u32>()
        .ok()
        .filter(|i| *i < u32::MAX && i.to_string() == key)?;
    usize::try_from(i).ok()
}

fn json_property<'a>(json: &'a Value, key: &str) -> Val<'a> {
    match json {
        Value::Object(map) => map.get(key).map_or(Val::Undefined, Val::from_json),
        Value::Array(items) if key == "length" => Val::Num(items.len() as f64),
        Value::Array(items) => index(key)
            .and_then(|i| items.get(i))
            .map_or(Val::Undefined, Val::from_json),
        _ => Val::Undefined,
    }
}

fn text_property<'a>(s: &str, key: &str) -> Val<'a> {
    if key == "length" {
        return Val::Num(s.encode_utf16().count() as f64);
    }
    index(key)
        .and_then(|i| s.encode_utf16().nth(i))
        .and_then(|unit| char::from_u32(u32::from(unit)))
        .map_or(Val::Undefined, |c| Val::Str(c.to_string().into()))
}

/// `Math.min`/`Math.max`, where -0 is smaller than +0.
fn extreme(vals: &[Val], min: bool) -> f64 {
    let mut best = if min {
        f64::INFINITY
    } else {
        f64::NEG_INFINITY
    };
    for n in vals.iter().map(to_number) {
        if n.is_nan() {
            return f64::NAN;
        }
        let tie = n == best && n == 0.0 && n.is_sign_negative() == min;
        if tie || (min && n < best) || (!min && n > best) {
            best = n;
        }
    }
    best
}

/// JavaScript's `String(v)`.
fn to_js_string(v: &Val) -> String {
    match v {
        Val::Undefined => "undefined".into(),
        Val::Null => "null".into(),
        Val::Bool(b) => b.to_string(),
        Val::Num(n) => js_number(*n),
        Val::Str(s) => s.to_string(),
        Val::List(items) => join(items.iter().cloned()),
        Val::Json(Value::Array(items)) => join(items.iter().map(Val::from_json)),
        Val::Json(_) => "[object Object]".into(),
    }
}

/// `Array.prototype.join`: null and undefined items print as nothing.
fn join<'a>(items: impl Iterator<Item = Val<'a>>) -> String {
    let parts: Vec<String> = items
        .map(|i| match i {
            Val::Undefined | Val::Null => String::new(),
            other => to_js_string(&other),
        })
        .collect();
    parts.join(",")
}

/// JavaScript's `Number(v)`.
fn to_number(v: &Val) -> f64 {
    match v {
        Val::Undefined => f64::NAN,
        Val::Null => 0.0,
        Val::Bool(b) => f64::from(u8::from(*b)),
        Val::Num(n) => *n,
        Val::Str(s) => string_to_number(s),
        Val::List(_) | Val::Json(_) => string_to_number(&to_js_string(v)),
    }
}

/// JavaScript's `parseFloat(v)`: the longest decimal prefix, else NaN.
fn parse_float(v: &Val) -> f64 {
    match v {
        Val::Num(n) => positive_zero(*n), // String(-0) is "0"
        _ => decimal_prefix(to_js_string(v).trim_start_matches(is_js_space))
            .map_or(f64::NAN, |(_, n)| n),
    }
}

fn positive_zero(n: f64) -> f64 {
    if n == 0.0 { 0.0 } else { n }
}

/// The white space JavaScript trims: Rust's set minus U+0085, plus U+FEFF.
fn is_js_space(c: char) -> bool {
    (c.is_whitespace() && c != '\u{85}') || c == '\u{feff}'
}

fn string_to_number(s: &str) -> f64 {
    let t = s.trim_matches(is_js_space);
    if t.is_empty() {
        return 0.0;
    }
    let radix = match t.get(..2) {
        Some("0x" | "0X") => 16,
        Some("0o" | "0O") => 8,
        Some("0b" | "0B") => 2,
        _ => {
            return decimal_prefix(t)
                .filter(|(len, _)| *len == t.len())
                .map_or(f64::NAN, |(_, n)| n);
        }
    };
    let digits = &t[2..];
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return f64::NAN;
    }
    u128::from_str_radix(digits, radix).map_or_else(
        |_| {
            digits
                .chars()
                .filter_map(|c| c.to_digit(radix))
                .fold(0.0, |acc, d| acc * f64::from(radix) + f64::from(d))
        },
        |n| n as f64,
    )
}

/// The longest prefix of `t` that is a JavaScript StrDecimalLiteral (sign,
/// `Infinity`, digits with an optional point, exponent), with its value.
fn decimal_prefix(t: &str) -> Option<(usize, f64)> {
    let b = t.as_bytes();
    let digits = |from: usize| {
        b[from.min(b.len())..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count()
    };
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    if t[i..].starts_with("Infinity") {
        let sign = if b.first() == Some(&b'-') { -1.0 } else { 1.0 };
        return Some((i + 8, sign * f64::INFINITY));
    }
    let whole = digits(i);
    i += whole;
    let mut fraction = 0;
    if b.get(i) == Some(&b'.') {
        fraction = digits(i + 1);
        if whole + fraction > 0 {
            i += 1 + fraction;
        }
    }
    if whole + fraction == 0 {
        return None;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(b.get(i + 1), Some(b'+' | b'-')));
        let exponent = digits(i + 1 + sign);
        if exponent > 0 {
            i += 1 + sign + exponent;
        }
    }
    t[..i].parse().ok().map(|n| (i, n))
}

/// JavaScript's `Number.prototype.toString()`: shortest round-trip digits,
/// exponent form below 1e-6 and from 1e21.
fn js_number(n: f64) -> String {
    if n.is_nan() {
        return "NaN".into();
    }
    if n == 0.0 {
        return "0".into();
    }
    if n.is_infinite() {
        return if n > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let sci = format!("{:e}", n.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits = mantissa.replace('.', "");
    let k = digits.len() as i32;
    let point = exp.parse::<i32>().unwrap_or(0) + 1;
    let body = if k <= point && point <= 21 {
        format!("{digits}{}", "0".repeat((point - k) as usize))
    } else if 0 < point && point <= 21 {
        let (int, frac) = digits.split_at(point as usize);
        format!("{int}.{frac}")
    } else if -6 < point && point <= 0 {
        format!("0.{}{digits}", "0".repeat(-point as usize))
    } else {
        let (head, tail) = digits.split_at(1);
        let dot = if tail.is_empty() { "" } else { "." };
        let sign = if point > 1 { "+" } else { "" };
        format!("{head}{dot}{tail}e{sign}{}", point - 1)
    };
    format!("{}{body}", if n < 0.0 { "-" } else { "" })
}

/// Why the rule refused this scan, or `None` if it admits it.
///
/// A top-level `or` offers ways in; each is the list of its `and`-ed
/// conditions (nested `and`s flattened; a nested `or` stays one condition and
/// is explained the same way, recursively). The explanation names the failed
/// conditions of the way with the fewest failures (ties: the first). A way made
/// only of `{"!": {"var": …}}` conditions ("no earlier entry") is an exemption
/// the holder can't meet now, so it is named only if every way is one.
pub fn explain(rule: &Value, facts: &Value) -> Option<String> {
    if evaluate(rule, facts) {
        return None;
    }
    if too_deep(rule, MAX_EVAL_DEPTH) {
        return Some(TOO_DEEP.into());
    }
    Some(explain_failure(rule, facts))
}

/// The whole rule in words, as the organizer's editor shows it: conditions
/// joined with "and", ways in with "or".
pub fn describe(rule: &Value) -> String {
    if too_deep(rule, MAX_EVAL_DEPTH) {
        return TOO_DEEP.into();
    }
    describe_ways(rule)
}

fn ways(node: &Value) -> Vec<Vec<&Value>> {
    match logic(node) {
        Some(("or", args)) if !args.is_empty() => args.iter().flat_map(ways).collect(),
        Some(("and", [only])) => ways(only),
        _ => vec![conditions(node)],
    }
}

fn conditions(node: &Value) -> Vec<&Value> {
    match logic(node) {
        Some(("and", args)) if !args.is_empty() => args.iter().flat_map(conditions).collect(),
        _ => vec![node],
    }
}

fn describe_ways(rule: &Value) -> String {
    let ways: Vec<String> = ways(rule)
        .iter()
        .map(|way| {
            way.iter()
                .map(|c| words(c, None))
                .collect::<Vec<_>>()
                .join(" and ")
        })
        .collect();
    ways.join(" or ")
}

fn explain_failure(rule: &Value, facts: &Value) -> String {
    let ways = ways(rule);
    let failed: Vec<Vec<&Value>> = ways
        .iter()
        .map(|way| {
            way.iter()
                .copied()
                .filter(|c| !evaluate(c, facts))
                .collect()
        })
        .collect();
    let exemption = |way: &[&Value]| {
        way.iter()
            .all(|c| matches!(logic(c), Some(("!", [v])) if var_name(v).is_some()))
    };
    let closest = |skip_exemptions: bool| {
        ways.iter()
            .zip(&failed)
            .filter(|(_, f)| !f.is_empty())
            .filter(|(way, _)| !(skip_exemptions && exemption(way)))
            .min_by_key(|(_, f)| f.len())
            .map(|(_, f)| f)
    };
    match closest(true).or_else(|| closest(false)) {
        Some(failed) => english(
            &failed
                .iter()
                .map(|c| words(c, Some(facts)))
                .collect::<Vec<_>>(),
            "and",
        ),
        None => generic(rule),
    }
}

/// One condition in words; with `facts`, the words for its failure, which
/// may quote the facts ("already entered twice today").
fn words(leaf: &Value, facts: Option<&Value>) -> String {
    match logic(leaf) {
        Some(("and" | "or", args)) if !args.is_empty() => match facts {
            Some(facts) => explain_failure(leaf, facts),
            None => format!("({})", describe_ways(leaf)),
        },
        Some(("!!", [inner])) => words(inner, facts),
        Some(("!", [inner])) => match var_name(inner) {
            Some(var @ ("entries_today" | "entries_total" | "minutes_since_last_entry")) => {
                no_earlier_entry(var, facts)
            }
            _ => format!("not ({})", describe_ways(inner)),
        },
        _ => match leaf {
            Value::Bool(true) => "always".into(),
            Value::Bool(false) => "never".into(),
            _ => comparison(leaf)
                .and_then(|c| compared(c, facts))
                .unwrap_or_else(|| generic(leaf)),
        },
    }
}

fn generic(leaf: &Value) -> String {
    format!("the gate's rule {}", compact(leaf))
}

/// Compact JSON as `JSON.stringify` writes it (numbers included).
fn compact(v: &Value) -> String {
    let list = |items: Vec<String>| items.join(",");
    match v {
        Value::Number(n) => js_number(n.as_f64().unwrap_or(f64::NAN)),
        Value::Array(items) => format!("[{}]", list(items.iter().map(compact).collect())),
        Value::Object(map) => {
            let pairs = map
                .iter()
                .map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), compact(v)));
            format!("{{{}}}", list(pairs.collect()))
        }
        other => other.to_string(),
    }
}

/// A condition that compares one fact with literals.
#[derive(Clone, Copy)]
enum Comparison<'r> {
    /// `{op: [var, literal]}`, mirrored when the var is on the right; `===`
    /// and `!==` read as `==` and `!=`.
    Cmp(&'r str, &'static str, &'r Value),
    /// `{"<=": [low, var, high]}` (inclusive) or `{"<": …}`.
    Between(&'r str, bool, &'r Value, &'r Value),
    /// `{"in": [var, [literal, …]]}`.
    In(&'r str, &'r [Value]),
}

fn var_name(node: &Value) -> Option<&str> {
    match logic(node)? {
        ("var", [Value::String(name), ..]) => Some(name),
        _ => None,
    }
}

fn comparison(leaf: &Value) -> Option<Comparison<'_>> {
    let (op, args) = logic(leaf)?;
    let literal = |v: &Value| !v.is_array() && !v.is_object();
    match (op, args) {
        ("<" | "<=", [low, var, high]) => {
            Some(Comparison::Between(var_name(var)?, op == "<=", low, high))
        }
        ("in", [var, Value::Array(list)]) => Some(Comparison::In(var_name(var)?, list)),
        (_, [left, right]) => {
            let (op, mirrored) = match op {
                "==" | "===" => ("==", "=="),
                "!=" | "!==" => ("!=", "!="),
                "<" => ("<", ">"),
                "<=" => ("<=", ">="),
                ">" => (">", "<"),
                ">=" => (">=", "<="),
                _ => return None,
            };
            match (var_name(left), var_name(right)) {
                (Some(var), None) if literal(right) => Some(Comparison::Cmp(var, op, right)),
                (None, Some(var)) if literal(left) => Some(Comparison::Cmp(var, mirrored, left)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The words for a comparison, or `None` to fall back to raw JSON.
fn compared(c: Comparison, facts: Option<&Value>) -> Option<String> {
    use Comparison::{Between, Cmp, In};
    let time = |v: &Value| whole(v, 1440.0).map(|n| format!("{:02}:{:02}", n / 60, n % 60));
    let day = |v: &Value| whole(v, 7.0).filter(|d| *d >= 1);
    Some(match c {
        Cmp("minutes_of_day", op, v) => format!("{} {}", when(op), time(v)?),
        Cmp("now", op, Value::String(s)) => format!("{} {}", when(op), stamp(s)),
        Between("minutes_of_day", true, low, high) => {
            format!("only between {} and {}", time(low)?, time(high)?)
        }
        Between("minutes_of_day", false, low, high) => {
            format!("only after {} and before {}", time(low)?, time(high)?)
        }
        Cmp("weekday", op, v) => {
            let d = day(v)?;
            match op {
                "==" => days(d, d)?,
                "!=" => format!("not on {}", DAYS[(d - 1) as usize]),
                "<" => days(1, d - 1)?,
                "<=" => days(1, d)?,
                ">" => days(d + 1, 7)?,
                _ => days(d, 7)?,
            }
        }
        Between("weekday", inclusive, low, high) => {
            let (low, high) = (day(low)?, day(high)?);
            if inclusive {
                days(low, high)?
            } else {
                days(low + 1, high.checked_sub(1)?)?
            }
        }
        In("weekday", list) => {
            let names = list
                .iter()
                .map(|v| day(v).map(|d| DAYS[(d - 1) as usize].to_owned()));
            let names = names
                .collect::<Option<Vec<_>>>()
                .filter(|n| !n.is_empty())?;
            format!("only on {}", english(&names, "or"))
        }
        // The facts count entries before this scan, so `< 2` lets a second
        // entry in: at most 2 entries.
        Cmp(var @ ("entries_today" | "entries_total"), op, v) => {
            let n = whole(v, BIG)?;
            let (per, today) = if var == "entries_today" {
                (" a day", " today")
            } else {
                ("", "")
            };
            let most = match op {
                "<" => n,
                "<=" => n + 1,
                "==" if n == 0 => 1,
                ">" => {
                    return Some(format!(
                        "only after entering at least {}{today}",
                        times(n + 1)
                    ));
                }
                ">=" => return Some(format!("only after entering at least {}{today}", times(n))),
                _ => return None,
            };
            match facts.and_then(|f| count(f, var)) {
                Some(done) => format!("already entered {}{today}", times(done)),
                None => format!(
                    "at most {most} {}{per}",
                    if most == 1 { "entry" } else { "entries" }
                ),
            }
        }
        Cmp("minutes_since_last_entry", op @ (">" | ">="), v) => {
            let n = minutes(whole(v, BIG)?);
            let more = if op == ">" { "more than " } else { "" };
            match facts {
                None if more.is_empty() => format!("at least {n} between entries"),
                None => format!("more than {n} between entries"),
                Some(f) => format!("only {more}{n} after the last entry{}", last_entry(f)),
            }
        }
        Cmp("ticket_type_id", "==", _) => "only for one ticket type".into(),
        Cmp("ticket_type_id", "!=", _) => "not for this ticket type".into(),
        In("ticket_type_id", [_]) => "only for one ticket type".into(),
        In("ticket_type_id", _) => "only for some ticket types".into(),
        _ => return None,
    })
}

/// The prefix for a point in time compared with `op`.
fn when(op: &str) -> &'static str {
    match op {
        "<" => "only before",
        "<=" => "only until",
        ">" => "only after",
        ">=" => "only from",
        "==" => "only at",
        _ => "not at",
    }
}

/// An RFC 3339 literal as "2026-12-01 17:00", in the zone it was written in.
fn stamp(s: &str) -> String {
    let shape = b"dddd-dd-ddTdd:dd";
    let fits = s.len() >= shape.len()
        && shape
            .iter()
            .zip(s.as_bytes())
            .all(|(want, got)| match want {
                b'd' => got.is_ascii_digit(),
                b'T' => matches!(got, b'T' | b't' | b' '),
                want => want == got,
            });
    if fits {
        format!("{} {}", &s[..10], &s[11..16])
    } else {
        s.to_owned()
    }
}

fn days(first: u64, last: u64) -> Option<String> {
    let name = |d: u64| DAYS[(d - 1) as usize];
    (1 <= first && first <= last && last <= 7).then(|| {
        if first == last {
            format!("only on {}", name(first))
        } else {
            format!("only {} to {}", name(first), name(last))
        }
    })
}

/// A JSON whole number from 0 to `max`.
fn whole(v: &Value, max: f64) -> Option<u64> {
    let n = v.as_f64()?;
    (n.fract() == 0.0 && (0.0..=max).contains(&n)).then_some(n as u64)
}

fn count(facts: &Value, var: &str) -> Option<u64> {
    facts
        .get(var)
        .and_then(|v| whole(v, BIG))
        .filter(|n| *n > 0)
}

fn times(n: u64) -> String {
    match n {
        1 => "once".into(),
        2 => "twice".into(),
        n => format!("{n} times"),
    }
}

fn minutes(n: u64) -> String {
    if n == 1 {
        "1 minute".into()
    } else {
        format!("{n} minutes")
    }
}

fn last_entry(facts: &Value) -> String {
    let ago = facts
        .get("minutes_since_last_entry")
        .and_then(|v| whole(v, BIG));
    ago.map(|m| format!(" (last entry {} ago)", minutes(m)))
        .unwrap_or_default()
}

/// `{"!": {"var": …}}` on an entry fact: never entered (today).
fn no_earlier_entry(var: &str, facts: Option<&Value>) -> String {
    let today = if var == "entries_today" { " today" } else { "" };
    match facts {
        None => format!("no earlier entry{today}"),
        Some(f) if var == "minutes_since_last_entry" => format!("already entered{}", last_entry(f)),
        Some(f) => match count(f, var) {
            Some(done) => format!("already entered {}{today}", times(done)),
            None => format!("no earlier entry{today}"),
        },
    }
}

/// "a", "a and b", "a, b, and c".
fn english(items: &[String], conjunction: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [a, b] => format!("{a} {conjunction} {b}"),
        [init @ .., last] => format!("{}, {conjunction} {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The table the scanner app's `scripts/rules_table.js` checks too.
    #[test]
    fn shared_table() {
        let rows: Vec<Value> =
            serde_json::from_str(include_str!("rules_table.json")).expect("the table is JSON");
        assert!(rows.len() >= 40, "the table has {} rows", rows.len());
        for row in &rows {
            let name = row["name"].as_str().expect("every row has a name");
            let (rule, facts) = (&row["rule"], &row["facts"]);
            assert_eq!(validate(rule), Ok(()), "{name}: validate");
            for var in VARIABLES {
                assert!(facts.get(var).is_some(), "{name}: the facts lack {var}");
            }
            assert_eq!(
                evaluate(rule, facts),
                row["result"] == true,
                "{name}: evaluate"
            );
            let expected = row["explanation"].as_str();
            assert_eq!(explain(rule, facts).as_deref(), expected, "{name}: explain");
            if let Some(words) = row.get("describe") {
                assert_eq!(
                    Some(describe(rule).as_str()),
                    words.as_str(),
                    "{name}: describe"
                );
            }
        }
    }

    #[test]
    fn validate_says_what_is_wrong() {
        let mut deep = json!({"var": "weekday"});
        for _ in 0..12 {
            deep = json!({"!": deep});
        }
        let wide = json!({"+": vec![1; MAX_NODES]});
        let cases = [
            (json!({"cat": ["a", "b"]}), "unknown operator \"cat\""),
            (json!({"var": "seat"}), "unknown fact \"seat\""),
            (json!({"var": "now.x"}), "unknown fact \"now.x\""),
            (json!({"var": 1}), "a fact's name"),
            (json!({}), "found an object with 0 keys"),
            (
                json!({"<": [1, {"a": 1, "b": 2}]}),
                "found an object with 2 keys",
            ),
            (json!({"<": [1]}), "\"<\" takes 2 or 3 operands, found 1"),
            (
                json!({"!": [1, 2]}),
                "\"!\" takes exactly 1 operand, found 2",
            ),
            (json!({"if": [true, 1, 2, 3]}), "odd number"),
            (json!(1), "true, false or one operator"),
            (deep, "nested too deeply"),
            (wide, "too large"),
        ];
        for (rule, words) in cases {
            let err = validate(&rule).expect_err(&rule.to_string());
            assert!(err.contains(words), "{rule}: {err}");
        }
        let mut deepest = json!({"var": "weekday"});
        for _ in 0..11 {
            deepest = json!({"!": deepest});
        }
        assert_eq!(validate(&deepest), Ok(()));
        assert_eq!(validate(&json!(false)), Ok(()));
    }

    /// Corners of JavaScript the table can't reach (its rules must validate).
    #[test]
    fn javascript_corners() {
        let facts = json!({"a": {"b": [10, "x"]}, "s": "héllo", "o": {"indexOf": 1}});
        let yes = |rule: Value| assert!(evaluate(&rule, &facts), "{rule}");
        let no = |rule: Value| assert!(!evaluate(&rule, &facts), "{rule}");
        yes(json!({"==": [{"var": "a.b.0"}, 10]}));
        yes(json!({"==": [{"var": "a.b.length"}, 2]}));
        yes(json!({"==": [{"var": "s.length"}, 5]}));
        yes(json!({"==": [{"var": "a.b"}, {"var": "a.b"}]})); // same object
        no(json!({"==": [[1], [1]]})); // two new lists
        yes(json!({"==": [{"var": ["a.zz", 7]}, 7]}));
        yes(json!({"==": [" 0x1F ", 31]}));
        no(json!({"==": ["1px", 1]}));
        yes(json!({"==": [{"+": ["1px", 1]}, 2]}));
        yes(json!({"==": [{"+": [1e21, 0]}, "1e+21"]}));
        yes(json!({"===": [{"*": ["3"]}, "3"]}));
        no(json!({"*": []})); // throws
        no(json!({"in": [1, {"var": "o"}]})); // throws: indexOf isn't a function
        yes(json!({"in": [1, "a1"]}));
        yes(json!({"<": ["Z", "a"]}));
        yes(json!({"<": [{"var": "missing"}, 1]})); // null is 0 here
        no(json!({"==": [{"var": "missing"}, 0]})); // but not here
        no(json!({"unknown": [1]}));
        assert_eq!(js_number(1.5e-7), "1.5e-7");
        assert_eq!(js_number(123_456.789), "123456.789");
        assert_eq!(js_number(-0.000_001), "-0.000001");
        assert_eq!(js_number(2e21), "2e+21");
    }

    /// A small fuzz: random trees (mostly nonsense) never panic, and `explain`
    /// is silent exactly when `evaluate` admits.
    #[test]
    fn random_rules_never_panic() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % n
        };
        for _ in 0..600 {
            let rule = random_tree(&mut next, 0);
            let facts = Value::Object(
                VARIABLES
                    .iter()
                    .map(|v| ((*v).to_owned(), random_tree(&mut next, 4)))
                    .collect(),
            );
            let admitted = evaluate(&rule, &facts);
            assert_eq!(
                explain(&rule, &facts).is_none(),
                admitted,
                "{rule} with {facts}"
            );
            let _ = (describe(&rule), validate(&rule));
        }
    }

    fn random_tree(next: &mut impl FnMut(u64) -> u64, depth: u32) -> Value {
        let scalars = [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(-0.0),
            json!(1),
            json!(2),
            json!(6),
            json!(1020),
            json!(1.5),
            json!(-3),
            json!(1e21),
            json!(""),
            json!("0"),
            json!("1"),
            json!(" 12 "),
            json!("0x1F"),
            json!("abc"),
            json!("Infinity"),
            json!([]),
            json!("2026-12-01T17:00:00+01:00"),
            json!({"a": 1, "b": 2}),
            json!({}),
        ];
        let names = [
            "now",
            "weekday",
            "entries_today",
            "minutes_since_last_entry",
            "x",
            "now.length",
            "",
        ];
        if depth > 4 || next(3) == 0 {
            return match next(4) {
                0 => json!({"var": names[next(names.len() as u64) as usize]}),
                _ => scalars[next(scalars.len() as u64) as usize].clone(),
            };
        }
        let ops = [&OPERATORS[..], &["cat", "?:", "", "a.b"]].concat();
        let op = ops[next(ops.len() as u64) as usize];
        let args: Vec<Value> = (0..next(4)).map(|_| random_tree(next, depth + 1)).collect();
        let operands = match next(5) {
            0 => args.into_iter().next().unwrap_or(Value::Null),
            1 => return Value::Array(args),
            _ => Value::Array(args),
        };
        Value::Object(std::iter::once((op.to_owned(), operands)).collect())
    }
}
