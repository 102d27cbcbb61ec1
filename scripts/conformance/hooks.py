"""Schemathesis hooks for scripts/conformance.sh.

The document says what a well-formed request is; some requests are well
formed and still refused for reasons no JSON Schema can state: an order
between two fields, or a reference to an object that has to exist. So that
`positive_data_acceptance` judges the schema and not the fuzzer's luck, a
*positive* case is adjusted just before it is sent, the way a real client
would fill it in:

- `ends_at` after `starts_at` (and `sale_ends_at` after `sale_starts_at`,
  `valid_until` after `valid_from`),
  as the field descriptions say;
- hold items name ticket types of the event that are on sale, each once, no
  more of each than its `max_per_order`, and no `seats` (no event here has a
  seat map);
- a new device scans for the demo event (an event of the organization),
  at any gate, and most scans are for the demo event (the demo device's),
  at one of its gates (or none), going out only through an in/out gate;
- a gate names ticket types of the event, opens before it closes, and its
  rule (when it has one) is a rule the gate knows;
- the demo event keeps no waiting room and no sales limits (set by an
  earlier case, they would refuse later holds and checkouts for reasons the
  request itself does not carry), and a room turned on gets its opening time;
- an `Idempotency-Key` is made unique to the request's body and path (the
  same key with another body is a documented 422 `idempotency_conflict`,
  which depends on what was sent before, not on this request);
- a new event's time zone is one the IANA database knows (the schema says
  "IANA name"; a pattern cannot list them);
- quotas and vouchers name ticket types of the event, each once; a voucher
  has exactly one of `percent_off` and `amount_off_cents`, and a code no
  earlier case used (codes are unique per event); a reserving voucher names
  exactly one ticket type and ends in the future, and no series reserves;
- the demo event gets no seats (a seated type is held by seat only, so the
  later general-admission holds would be refused); another event's map
  names its ticket types, with labels unique where the map needs them, and
  holds fill items only with types that are not seated;
- a ticket type's questions have unique ids and non-blank labels, options
  only on a choice (which has some); a change of one end of the sale
  window, or of one per-order limit, clears the other (the stored one may
  not fit); no question is required (checkouts here send no answers); and
  the demo event's type is never retired, hidden, put off sale or given a
  least per order (later holds would be refused for it).
  Holds take at least a type's `min_per_order`; a waiting-list entry names
  a general-admission type of the event on sale, within its limits.

Negative cases are never touched. Path parameters name the demo event most
of the time (the config file does the same for `{org}`), so most requests
get past the 404.

Environment (set by scripts/conformance.sh): VG_BASE_URL, VG_EVENT_ID.
"""

import datetime
import hashlib
import json
import os
import re
import uuid
import zlib
from urllib.parse import quote

import requests
import schemathesis
from hypothesis import strategies as st

BASE_URL = os.environ.get("VG_BASE_URL", "")
EVENT_ID = os.environ.get("VG_EVENT_ID")
API_KEY = os.environ.get("VG_API_KEY", "")


@schemathesis.hook
def flatmap_path_parameters(context, path_parameters):
    if EVENT_ID and path_parameters and "event_id" in path_parameters:
        demo = {**path_parameters, "event_id": EVENT_ID}
        return st.sampled_from([demo, demo, demo, dict(path_parameters)])
    return st.just(path_parameters)


_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:[Zz]|([+-])(\d{2}):(\d{2}))$"
)


def _micros(text):
    """Microseconds since 0001-01-01 UTC, as the server reads RFC 3339."""
    m = _TIME.match(text) if isinstance(text, str) else None
    if m is None:
        return None
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    try:
        days = datetime.date(y, mo, d).toordinal()
    except ValueError:
        return None
    frac = int((m.group(7) or "0")[:6].ljust(6, "0"))
    offset = 0
    if m.group(8):
        offset = (int(m.group(9)) * 60 + int(m.group(10))) * 60
        if m.group(8) == "-":
            offset = -offset
    return ((days * 24 + h) * 60 + mi) * 60 * 1_000_000 + s * 1_000_000 + frac - offset * 1_000_000


def _order_times(body, start, end):
    """Swaps `start` and `end` when `end` is not after `start`."""
    a, b = _micros(body.get(start)), _micros(body.get(end))
    if a is None or b is None or b > a:
        return
    if a == b:
        # Equal to the microsecond: any later time will do.
        body[end] = "9999-12-31T23:59:59Z"
        if _micros(body[end]) <= a:
            body[start] = "0001-01-01T00:00:00Z"
        return
    body[start], body[end] = body[end], body[start]


def _store_event(org, event_id):
    url = f"{BASE_URL}/api/v1/store/{quote(str(org), safe='')}/events/{quote(str(event_id), safe='')}"
    try:
        r = requests.get(url, timeout=10)
    except requests.RequestException:
        return None
    return r.json() if r.status_code == 200 else None


def _seated_types(org, event_id):
    url = f"{BASE_URL}/api/v1/store/{quote(str(org), safe='')}/events/{quote(str(event_id), safe='')}/seats"
    try:
        r = requests.get(url, timeout=10)
    except requests.RequestException:
        return set()
    return {s["ticket_type_id"] for s in r.json()["seats"]} if r.status_code == 200 else set()


def _fill_seating(case, body):
    sections = body.get("sections")
    if not isinstance(sections, list):
        return
    types = _event_types(case)
    if types is None:
        return  # no such event: a 404, as documented
    if case.path_parameters.get("event_id") == EVENT_ID or not types:
        body["sections"] = []
        body["areas"] = []
        return
    # One standing area at most, sold as a type without seats (the seats
    # take the first type), named once.
    areas = body.get("areas")
    if isinstance(areas, list):
        areas = [a for a in areas if isinstance(a, dict)][:1]
        if len(types) > 1:
            for ai, area in enumerate(areas):
                area["name"] = f"A{ai}"
                area["ticket_type_ids"] = [types[1]]
        else:
            areas = []
        body["areas"] = areas
    for si, section in enumerate(sections):
        if not isinstance(section, dict):
            continue
        section["name"] = f"S{si}"
        for ri, row in enumerate(section.get("rows") or []):
            if not isinstance(row, dict):
                continue
            row["label"] = f"R{ri}"
            for xi, seat in enumerate(row.get("seats") or []):
                if isinstance(seat, dict):
                    seat["label"] = str(xi + 1)
                    seat["ticket_type_id"] = types[0]


def _fill_layout(body):
    # Unique names and labels, a category on every seat (what a seat map's
    # schema cannot say), as an organizer's editor would make them.
    if not isinstance(body.get("sections"), list):
        return
    for si, section in enumerate(body["sections"]):
        if not isinstance(section, dict):
            continue
        section["name"] = f"S{si}"
        for ri, row in enumerate(section.get("rows") or []):
            if not isinstance(row, dict):
                continue
            row["label"] = f"R{ri}"
            for xi, seat in enumerate(row.get("seats") or []):
                if isinstance(seat, dict):
                    seat["label"] = str(xi + 1)
                    seat["category"] = "Stalls"
    if isinstance(body.get("areas"), list):
        for ai, area in enumerate(body["areas"]):
            if isinstance(area, dict):
                # A category is sold into one area at most.
                area["name"] = f"A{ai}"
                area["categories"] = [f"Standing {ai}"]


def _fill_hold(case, body):
    body.pop("seats", None)
    body.pop("best_available", None)
    org = case.path_parameters.get("org")
    event = _store_event(org, case.path_parameters.get("event_id"))
    if event is None:
        return  # no such published event: a 404, as documented
    seated = _seated_types(org, case.path_parameters.get("event_id"))
    types = [t for t in event["ticket_types"] if t["on_sale"] and t["id"] not in seated]
    if not types and EVENT_ID:
        case.path_parameters["event_id"] = EVENT_ID
        event = _store_event(org, EVENT_ID) or {"ticket_types": []}
        types = [t for t in event["ticket_types"] if t["on_sale"] and t["id"] not in _seated_types(org, EVENT_ID)]
    # One order is priced in one currency (checkout refuses a mix with 422):
    # fill a hold only with types in the first one's currency.
    if types:
        types = [t for t in types if t.get("currency") == types[0].get("currency")]
    items = body.get("items")
    if types and (items is None or items == []):
        # Without seats a hold names at least one item.
        items = body["items"] = [{"ticket_type_id": types[0]["id"], "quantity": 1}]
    if not types or not isinstance(items, list) or not items:
        return
    filled = []
    for item, tt in zip(items, types):
        if not isinstance(item, dict):
            continue
        item["ticket_type_id"] = tt["id"]
        quantity = item.get("quantity")
        if isinstance(quantity, (int, float)) and not isinstance(quantity, bool):
            least = tt.get("min_per_order", 1)
            item["quantity"] = max(least, min(int(quantity), tt["max_per_order"]))
        filled.append(item)
    body["items"] = filled or items[:1]


def _event_json(case):
    """The event as its organizer sees it, or None."""
    org, event = case.path_parameters.get("org"), case.path_parameters.get("event_id")
    url = f"{BASE_URL}/api/v1/orgs/{quote(str(org), safe='')}/events/{quote(str(event), safe='')}"
    try:
        r = requests.get(url, timeout=10, headers={"Authorization": f"Bearer {API_KEY}"})
    except requests.RequestException:
        return None
    return r.json() if r.status_code == 200 else None


def _event_types(case):
    """The event's ticket types as its organizer sees them (drafts too)."""
    event = _event_json(case)
    return None if event is None else [t["id"] for t in event["ticket_types"]]


def _fill_types(case, body, at_least_one):
    ids = body.get("ticket_type_ids")
    if not isinstance(ids, list):
        return
    types = _event_types(case)
    if types is None:
        return  # no such published event: a 404, as documented
    n = max(len(ids), 1 if at_least_one else 0)
    body["ticket_type_ids"] = types[: min(n, len(types))]


def _fill_voucher(case, body):
    percent, amount = body.get("percent_off"), body.get("amount_off_cents")
    if (percent is None) == (amount is None):
        body.pop("amount_off_cents", None)
        body["percent_off"] = percent if isinstance(percent, int) and 1 <= percent <= 100 else 10
    _fill_types(case, body, False)
    if body.get("reserve") is True:
        # A reservation is of exactly one ticket type, never a series'.
        event = _event_json(case)
        if event is None:
            pass  # no such event: a 404, as documented
        elif event.get("series") or not event["ticket_types"]:
            body["reserve"] = False
        else:
            body["ticket_type_ids"] = [event["ticket_types"][0]["id"]]
            if "valid_until" in body:
                # A reservation ends in the future.
                body["valid_until"] = "2099-01-01T00:00:00Z"
    if isinstance(body.get("code"), str):
        # Codes are unique per event: one no earlier case used.
        body["code"] = body["code"].strip()[:50] + uuid.uuid4().hex[:10]


def _fill_waitlist(case, body):
    org = case.path_parameters.get("org")
    event = _store_event(org, case.path_parameters.get("event_id"))
    if event is None:
        return  # no such published event: a 404, as documented
    seated = _seated_types(org, case.path_parameters.get("event_id"))
    types = [t for t in event["ticket_types"] if t["on_sale"] and t["id"] not in seated]
    if not types:
        return
    body["ticket_type_id"] = types[0]["id"]
    quantity = body.get("quantity")
    if isinstance(quantity, (int, float)) and not isinstance(quantity, bool):
        body["quantity"] = max(types[0].get("min_per_order", 1), min(int(quantity), types[0]["max_per_order"]))


def _fill_questions(body):
    questions = body.get("questions")
    if not isinstance(questions, list):
        return
    for i, q in enumerate(questions):
        if not isinstance(q, dict):
            continue
        if "id" in q:
            q["id"] = f"q{i}"
        if not isinstance(q.get("label"), str) or not q["label"].strip():
            q["label"] = f"Question {i}"
        if q.get("kind") == "choice":
            q["options"] = ["Yes", "No"]
        else:
            q.pop("options", None)
        # A checkout sends no answers: a required question would refuse it.
        q["required"] = False


def _fill_type_terms(case, body, patch):
    demo = case.path_parameters.get("event_id") == EVENT_ID
    if patch:
        for a, b in (
            ("sale_starts_at", "sale_ends_at"),
            ("valid_from", "valid_until"),
            ("min_per_order", "max_per_order"),
        ):
            if a in body and b not in body:
                body[b] = None
            elif b in body and a not in body:
                body[a] = None
    lo, hi = body.get("min_per_order"), body.get("max_per_order")
    number = lambda x: isinstance(x, (int, float)) and not isinstance(x, bool)
    if number(lo) and number(hi) and lo > hi:
        body["min_per_order"], body["max_per_order"] = hi, lo
    _order_times(body, "sale_starts_at", "sale_ends_at")
    _order_times(body, "valid_from", "valid_until")
    _fill_questions(body)
    if demo:
        for k in ("sale_starts_at", "sale_ends_at", "valid_from", "valid_until", "min_per_order"):
            if k in body:
                body[k] = None
        for k in ("retired", "hidden"):
            if k in body:
                body[k] = False


def _unique_idempotency_key(case):
    headers = case.headers or {}
    for name, key in headers.items():
        if name.lower() == "idempotency-key" and isinstance(key, str):
            digest = hashlib.sha256(
                json.dumps([case.path_parameters, case.body], sort_keys=True, default=str).encode()
            ).hexdigest()[:32]
            headers[name] = f"{key[:200]}.{digest}"


def _demo_gates():
    """The demo event's gates as its organizer sees them ([] if none)."""
    url = f"{BASE_URL}/api/v1/orgs/demo/events/{EVENT_ID}/gates"
    try:
        r = requests.get(url, timeout=10, headers={"Authorization": f"Bearer {API_KEY}"})
    except requests.RequestException:
        return []
    return r.json().get("data", []) if r.status_code == 200 else []


def _fill_scan_gate(body):
    if body.get("event_id") != EVENT_ID:
        return
    gates = _demo_gates()
    if body.get("gate") is not None and gates:
        pick = gates[zlib.crc32(str(body["gate"]).encode()) % len(gates)]
        body["gate"] = pick["id"]
        if body.get("direction") == "out" and pick["reentry"] != "in_out":
            body["direction"] = "in"
    elif body.get("direction") == "out":
        body["direction"] = "in"


@schemathesis.hook
def before_call(context, case, kwargs):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return
    _unique_idempotency_key(case)
    body = case.body
    if not isinstance(body, dict):
        return
    op = (case.method.upper(), case.operation.path)
    if op == ("POST", "/api/v1/orgs/{org}/events"):
        _order_times(body, "starts_at", "ends_at")
        import zoneinfo
        if body.get("timezone") not in zoneinfo.available_timezones():
            body["timezone"] = "Africa/Johannesburg"
    elif op == ("POST", "/api/v1/orgs/{org}/events/{event_id}/quotas"):
        _fill_types(case, body, True)
    elif op in (
        ("POST", "/api/v1/orgs/{org}/events/{event_id}/vouchers"),
        ("POST", "/api/v1/orgs/{org}/events/{event_id}/vouchers/bulk"),
    ):
        _fill_voucher(case, body)
    elif op == ("PUT", "/api/v1/orgs/{org}/events/{event_id}/seating"):
        _fill_seating(case, body)
    elif op in (
        ("POST", "/api/v1/orgs/{org}/venue-layouts"),
        ("PUT", "/api/v1/orgs/{org}/venue-layouts/{layout_id}"),
    ):
        _fill_layout(body)
    elif op == ("POST", "/api/v1/orgs/{org}/events/{event_id}/dates"):
        _order_times(body, "starts_at", "ends_at")
    elif op == ("POST", "/api/v1/orgs/{org}/events/{event_id}/ticket-types"):
        _fill_type_terms(case, body, False)
    elif op == ("PATCH", "/api/v1/orgs/{org}/events/{event_id}/ticket-types/{ticket_type_id}"):
        _fill_type_terms(case, body, True)
    elif op == ("POST", "/api/v1/store/{org}/events/{event_id}/holds"):
        _fill_hold(case, body)
    elif op == ("POST", "/api/v1/store/{org}/events/{event_id}/waiting-list"):
        _fill_waitlist(case, body)
    elif op == ("PUT", "/api/v1/orgs/{org}/events/{event_id}/waiting-room"):
        # A room needs its opening time; and the demo event stays open to
        # holds without a pass (else every later hold is a documented 403).
        if body.get("enabled") is True and not body.get("opens_at"):
            body["opens_at"] = "2026-12-01T09:00:00Z"
        if case.path_parameters.get("event_id") == EVENT_ID:
            body["enabled"] = False
    elif op == ("PUT", "/api/v1/orgs/{org}/events/{event_id}/sales-limits"):
        # The demo event keeps no limits, or later holds and checkouts
        # would be refused for what an earlier case set.
        if case.path_parameters.get("event_id") == EVENT_ID:
            body["max_tickets_per_order"] = None
            body["max_tickets_per_buyer"] = None
    elif op == ("POST", "/api/v1/scan") and EVENT_ID:
        # Three scans in four name the demo event; the rest answer 403.
        if zlib.crc32(str(body.get("code")).encode()) % 4:
            body["event_id"] = EVENT_ID
        # The demo event has gates: a scan names one of them or none, and
        # goes out only through an in/out gate.
        _fill_scan_gate(body)
    elif op in (
        ("POST", "/api/v1/orgs/{org}/events/{event_id}/gates"),
        ("PATCH", "/api/v1/orgs/{org}/events/{event_id}/gates/{gate_id}"),
    ):
        _fill_types(case, body, True)
        if body.get("rules") is not None:
            body["rules"] = {"<": [{"var": "minutes_of_day"}, 1020]}
        if case.method.upper() == "PATCH" and ("opens_at" in body) != ("closes_at" in body):
            body["opens_at"] = body.get("opens_at")
            body["closes_at"] = None
        _order_times(body, "opens_at", "closes_at")
    elif op == ("PATCH", "/api/v1/orgs/{org}/devices/{device_id}"):
        body.pop("gate_ids", None)
        if isinstance(body.get("event_ids"), list) and body["event_ids"] and EVENT_ID:
            body["event_ids"] = [EVENT_ID] * len(body["event_ids"])
    elif op == ("POST", "/api/v1/orgs/{org}/devices") and EVENT_ID:
        body.pop("gate_ids", None)
        if isinstance(body.get("event_ids"), list) and body["event_ids"]:
            body["event_ids"] = [EVENT_ID] * len(body["event_ids"])
