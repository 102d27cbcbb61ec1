// The scanner app for gate staff (served at /scan): pair the phone, pick the
// gate, scan tickets with the camera (the vendored jsQR) or by typing, and
// show each answer of POST /api/v1/scan full screen, with sound and
// vibration. Everything it knows lives in this page and localStorage; the
// server is asked for every verdict (the offline issue builds on this).
//
// The pure parts (`logic`) come first and are exported for node tests; the
// page itself starts only where there is a document.
(function (root) {
  "use strict";

  // ---- Pure logic -------------------------------------------------------

  // A supervisor may admit despite these refusals (the server's
  // ScanResult::overridable); never despite `already_admitted`.
  const OVERRIDABLE = ["wrong_gate", "rule", "not_valid_now", "gate_full"];

  const LOOKS = {
    admitted: { tone: "green", word: "ADMITTED" },
    exited: { tone: "green", word: "OUT" },
    already_admitted: { tone: "amber", word: "ALREADY IN" },
    invalid: { tone: "red", word: "INVALID" },
    revoked: { tone: "red", word: "REVOKED" },
    wrong_event: { tone: "red", word: "WRONG EVENT" },
    not_valid_now: { tone: "red", word: "NOT NOW" },
    wrong_gate: { tone: "red", word: "WRONG GATE" },
    rule: { tone: "red", word: "REFUSED" },
    unpaid: { tone: "red", word: "UNPAID" },
    gate_full: { tone: "red", word: "GATE FULL" },
  };

  // How a scan result looks; an unknown result (a newer server) refuses.
  function resultLook(result) {
    return Object.prototype.hasOwnProperty.call(LOOKS, result) ? LOOKS[result] : { tone: "red", word: "REFUSED" };
  }

  function overridable(result, role) {
    return role === "supervisor" && OVERRIDABLE.indexOf(result) !== -1;
  }

  // The pairing code in a `#pair=CODE` fragment, or null.
  function pairCodeFromHash(hash) {
    const m = /(?:^#?|[#&])pair=([^&#]*)/.exec(hash || "");
    if (!m) { return null; }
    let code;
    try { code = decodeURIComponent(m[1]); } catch (e) { return null; }
    return normalizePairingCode(code);
  }

  // Codes are letters and digits, any case; people type them with spaces
  // or dashes between groups.
  function normalizePairingCode(text) {
    const code = String(text).replace(/[\s-]+/g, "").toUpperCase();
    return /^[A-Z0-9]{4,64}$/.test(code) ? code : null;
  }

  // What a scanned pairing QR says: the organizer's link
  // (`…/scan#pair=CODE`) or the bare code.
  function pairingCodeFromQr(text) {
    const s = String(text).trim();
    if (s.indexOf("pair=") !== -1) {
      const hash = s.indexOf("#") !== -1 ? s.slice(s.indexOf("#")) : s;
      return pairCodeFromHash(hash);
    }
    return normalizePairingCode(s);
  }

  // The places this device can scan at: each of its gates, and each of its
  // events that has none of its gates ("scan anywhere").
  function gateChoices(me) {
    const events = Array.isArray(me && me.event_ids) ? me.event_ids : [];
    const gates = Array.isArray(me && me.gates) ? me.gates : [];
    const out = [];
    gates.forEach(function (g) {
      out.push({ gateId: g.id, eventId: g.event_id, gate: g, event: eventLabel(me, g.event_id) });
    });
    events.forEach(function (e) {
      if (!gates.some(function (g) { return g.event_id === e; })) {
        out.push({ gateId: null, eventId: e, gate: null, event: eventLabel(me, e) });
      }
    });
    return out;
  }

  // /devices/me names no events yet: tell them apart by number when there
  // are several (a name is used if a later server sends `events`).
  function eventLabel(me, eventId) {
    const named = Array.isArray(me && me.events) ? me.events.find(function (e) { return e && e.id === eventId; }) : null;
    if (named && named.name) { return named.name; }
    const ids = Array.isArray(me && me.event_ids) ? me.event_ids : [];
    if (ids.length < 2) { return ""; }
    const i = ids.indexOf(eventId);
    return i === -1 ? "" : "Event " + (i + 1);
  }

  function findChoice(choices, saved) {
    if (!saved || typeof saved !== "object") { return null; }
    return choices.find(function (c) {
      return c.eventId === saved.event_id && (c.gateId || null) === (saved.gate_id || null);
    }) || null;
  }

  // The camera sees a ticket many times a second while it is held up. A
  // code already answered is not sent again until it has been out of sight
  // for `quietMs` after its result was dismissed; a different code goes at
  // once. (Typed codes are always sent: `sent` only records them.)
  function repeatFilter(quietMs) {
    let code = null;
    let until = 0;
    return {
      accept: function (c, now) {
        if (c === code && now < until) {
          until = Math.max(until, now + quietMs);
          return false;
        }
        code = c;
        until = Infinity;
        return true;
      },
      sent: function (c) { code = c; until = Infinity; },
      dismissed: function (now) { if (until === Infinity) { until = now + quietMs; } },
    };
  }

  function pad2(n) { return (n < 10 ? "0" : "") + n; }

  // An RFC 3339 time as the gate's local HH:MM, with the date when it was
  // not today.
  function localTime(rfc3339, now) {
    const d = new Date(rfc3339);
    if (isNaN(d.getTime())) { return String(rfc3339); }
    const hm = pad2(d.getHours()) + ":" + pad2(d.getMinutes());
    const today = now || new Date();
    if (d.toDateString() === today.toDateString()) { return hm; }
    return d.getFullYear() + "-" + pad2(d.getMonth() + 1) + "-" + pad2(d.getDate()) + " " + hm;
  }

  function seatText(seat) {
    if (!seat || typeof seat !== "object") { return ""; }
    const parts = [];
    if (seat.section) { parts.push(String(seat.section)); }
    if (seat.row) { parts.push("Row " + seat.row); }
    if (seat.label) { parts.push("Seat " + seat.label); }
    return parts.join(", ");
  }

  // A problem document's words: its detail (or title), then its fields'.
  function problemText(data, fallback) {
    if (!data || typeof data !== "object") { return fallback; }
    let text = data.detail || data.title || fallback;
    if (Array.isArray(data.errors) && data.errors.length) {
      text += " (" + data.errors.map(function (e) {
        return e && e.field ? e.field + ": " + e.message : String(e && e.message);
      }).join("; ") + ")";
    }
    return text;
  }

  // How an answer that is not a verdict looks (no connection, a refusal of
  // the request itself).
  function problemLook(res) {
    if (res.status === 0) {
      return res.timedOut
        ? { tone: "grey", result: "no_answer", word: "NO ANSWER", reason: "The server did not answer in time — the scan may not be recorded. Scan again." }
        : { tone: "grey", result: "offline", word: "OFFLINE", reason: "No connection — scan not recorded" };
    }
    if (res.status === 403) {
      return { tone: "red", result: "forbidden", word: "NOT HERE", reason: "This device may not scan here", explanation: problemText(res.data, "") };
    }
    if (res.status === 429) {
      return { tone: "grey", result: "busy", word: "WAIT", reason: "Too many scans at once — wait a moment and scan again", explanation: problemText(res.data, "") };
    }
    if (res.status === 422 || res.status === 400) {
      return { tone: "grey", result: "not_checked", word: "NOT CHECKED", reason: problemText(res.data, "The server could not read this scan") };
    }
    return { tone: "grey", result: "error", word: "NOT CHECKED", reason: "The server could not check this scan (" + res.status + "). Scan again.", explanation: problemText(res.data, "") };
  }

  const logic = {
    resultLook: resultLook,
    overridable: overridable,
    pairCodeFromHash: pairCodeFromHash,
    pairingCodeFromQr: pairingCodeFromQr,
    normalizePairingCode: normalizePairingCode,
    gateChoices: gateChoices,
    findChoice: findChoice,
    repeatFilter: repeatFilter,
    localTime: localTime,
    seatText: seatText,
    problemText: problemText,
    problemLook: problemLook,
  };
  if (typeof module !== "undefined" && module.exports) { module.exports = logic; }
  if (typeof document === "undefined") { return; }

  // ---- The page ---------------------------------------------------------

  const KEY_TOKEN = "voelgoed.scanner.token";
  const KEY_GATE = "voelgoed.scanner.gate";
  const KEY_ME = "voelgoed.scanner.me";
  const REQUEST_TIMEOUT_MS = 10000;
  const REFRESH_MS = 15000;
  const GREEN_SHOWN_MS = 1500;
  const MIN_SHOWN_MS = 600; // a tap meant for the last result does not dismiss this one
  const REPEAT_QUIET_MS = 2000;
  const DECODE_EVERY_MS = 100;
  const DECODE_WIDTH = 640;
  const UNPAIRED = "This phone was unpaired. Ask for a new pairing code.";

  const $ = function (id) { return document.getElementById(id); };

  // localStorage can be missing or refuse (private browsing, full disk).
  const store = {
    get: function (k) { try { return root.localStorage.getItem(k); } catch (e) { return null; } },
    set: function (k, v) { try { root.localStorage.setItem(k, v); } catch (e) { /* kept in memory only */ } },
    remove: function (k) { try { root.localStorage.removeItem(k); } catch (e) { /* nothing kept */ } },
    json: function (k) { try { return JSON.parse(store.get(k)); } catch (e) { return null; } },
  };

  const state = {
    token: store.get(KEY_TOKEN),
    me: null,
    choice: null,
    direction: "in",
    busy: false,
    lastRequest: null,
    lastSource: null,
    shown: null, // the result on screen: {tone, result, at}
    refreshing: false,
  };
  const repeats = repeatFilter(REPEAT_QUIET_MS);
  let dismissTimer = null;

  function show(el, visible) { el.hidden = !visible; }

  function setText(id, text) {
    const el = $(id);
    el.textContent = text || "";
    show(el, Boolean(text));
  }

  function setScreen(name) {
    document.body.dataset.screen = name;
    show($("loading"), false);
    show($("pairing"), name === "pair");
    show($("gate-picker"), name === "gates");
    show($("scanner"), name === "scan");
    if (name !== "scan") { camera.stop(); }
  }

  // ---- Server -----------------------------------------------------------

  // Resolves to {ok, status, data, timedOut}; status 0 when nothing came back.
  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) { headers["Content-Type"] = "application/json"; }
    if (state.token) { headers.Authorization = "Bearer " + state.token; }
    const abort = typeof AbortController === "function" ? new AbortController() : null;
    const timer = abort ? setTimeout(function () { abort.abort(); }, REQUEST_TIMEOUT_MS) : null;
    try {
      const res = await fetch(path, {
        method: method,
        headers: headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: abort ? abort.signal : undefined,
        cache: "no-store",
        credentials: "omit",
      });
      let data = null;
      try { data = await res.json(); } catch (e) { data = null; }
      return { ok: res.ok, status: res.status, data: data, timedOut: false };
    } catch (e) {
      return { ok: false, status: 0, data: null, timedOut: Boolean(abort && abort.signal.aborted) };
    } finally {
      if (timer) { clearTimeout(timer); }
    }
  }

  // ---- Pairing ----------------------------------------------------------

  function showPairing(error, code) {
    setScreen("pair");
    show($("device"), false);
    setText("pair-error", error);
    $("pair-status").textContent = "";
    if (code) { $("pair-code").value = code; }
  }

  async function pairWith(code) {
    showPairing("", code);
    $("pair-button").disabled = true;
    $("pair-status").textContent = "Pairing…";
    state.token = null;
    const res = await api("POST", "/api/v1/devices/pair", { pairing_code: code });
    $("pair-button").disabled = false;
    $("pair-status").textContent = "";
    if (res.ok && res.data && typeof res.data.device_token === "string") {
      state.token = res.data.device_token;
      store.set(KEY_TOKEN, state.token);
      store.remove(KEY_GATE);
      store.remove(KEY_ME);
      $("pair-code").value = "";
      await loadMe(false);
      return;
    }
    let error;
    if (res.status === 0) {
      error = "No connection — check the phone's data or Wi-Fi and try again.";
    } else if (res.status === 404) {
      error = problemText(res.data, "No such pairing code") + " Ask for a new pairing code.";
    } else {
      error = problemText(res.data, "Pairing failed (" + res.status + ").");
    }
    // A failed pairing leaves an earlier pairing of this phone as it was.
    state.token = store.get(KEY_TOKEN);
    if (state.token) {
      await loadMe(false);
      if (document.body.dataset.screen !== "pair") {
        const kept = "Pairing with " + code + " failed: " + error + " This phone keeps its earlier pairing.";
        setText("gates-note", kept);
        setText("conn-note", kept);
      }
      return;
    }
    showPairing(error, code);
  }

  function onPairSubmit(ev) {
    ev.preventDefault();
    const code = normalizePairingCode($("pair-code").value);
    if (!code) {
      setText("pair-error", "A pairing code is letters and digits, like V49WJRLN2P.");
      return;
    }
    camera.stop();
    pairWith(code);
  }

  function startPairScan() {
    setText("pair-error", "");
    show($("pair-camera"), true);
    show($("pair-scan"), false);
    show($("pair-scan-stop"), true);
    let lastComplaint = "";
    camera.start($("pair-video"), "pair-camera-note", function (text) {
      const code = pairingCodeFromQr(text);
      if (code) {
        stopPairScan();
        pairWith(code);
      } else if (text !== lastComplaint) {
        lastComplaint = text;
        setText("pair-error", "That QR code is not a pairing code. Scan the one on the organizer's gate page.");
      }
    });
  }

  function stopPairScan() {
    camera.stop();
    show($("pair-camera"), false);
    show($("pair-scan"), true);
    show($("pair-scan-stop"), false);
    setText("pair-camera-note", "");
  }

  function unpaired() {
    state.token = null;
    state.me = null;
    state.choice = null;
    store.remove(KEY_TOKEN);
    store.remove(KEY_GATE);
    store.remove(KEY_ME);
    hideResult();
    showPairing(UNPAIRED);
  }

  // ---- The device and its gates ----------------------------------------

  // First load: the gate picker or the remembered gate. Later (a refresh):
  // the same screen with new figures, unless the gate was taken away.
  async function loadMe(refresh) {
    if (!state.token) { showPairing(""); return; }
    const res = await api("GET", "/api/v1/devices/me");
    if (res.status === 401) { unpaired(); return; }
    if (res.ok && res.data && typeof res.data === "object") {
      store.set(KEY_ME, JSON.stringify(res.data));
      setText("conn-note", "");
      setText("gates-note", "");
      applyMe(res.data, refresh);
      return;
    }
    const offline = res.status === 0 ? "No connection" : "The server did not answer (" + res.status + ")";
    if (refresh) {
      setText("conn-note", offline + " — the counts may be old.");
      return;
    }
    const cached = store.json(KEY_ME);
    if (cached && typeof cached === "object") {
      applyMe(cached, false);
      setText("conn-note", offline + " — showing the gates this phone knew last.");
      setText("gates-note", offline + " — showing the gates this phone knew last.");
      return;
    }
    setScreen("gates");
    $("gate-list").textContent = "";
    setText("gates-note", offline + ". Try again in a moment.");
    const retry = document.createElement("button");
    retry.type = "button";
    retry.className = "big";
    retry.textContent = "Try again";
    retry.addEventListener("click", function () { loadMe(false); });
    $("gate-list").appendChild(retry);
  }

  function applyMe(me, refresh) {
    state.me = me;
    $("device-name").textContent = me.name || "This phone";
    $("device-role").textContent = me.role === "supervisor" ? "Supervisor" : "Steward";
    show($("device"), true);
    const choices = gateChoices(me);
    const screen = document.body.dataset.screen;
    if (refresh && screen === "scan" && state.choice) {
      const still = findChoice(choices, { event_id: state.choice.eventId, gate_id: state.choice.gateId });
      if (still) {
        state.choice = still;
        describeGate(still);
        if (still.gate && still.gate.figures) { showFigures(still.gate.figures); }
        return;
      }
      store.remove(KEY_GATE);
      if (state.shown) { hideResult(); }
      showGatePicker(choices, "This phone may no longer scan at that gate. Pick another.");
      return;
    }
    if (refresh && screen === "gates") {
      if (choicesKey(choices) !== $("gate-list").dataset.key) { showGatePicker(choices, ""); }
      return;
    }
    if (refresh) { return; }
    const remembered = findChoice(choices, store.json(KEY_GATE));
    if (remembered) { startScanning(remembered); } else { showGatePicker(choices, ""); }
  }

  function showGatePicker(choices, note) {
    setScreen("gates");
    if (note) { setText("gates-note", note); }
    const list = $("gate-list");
    list.textContent = "";
    list.dataset.key = choicesKey(choices);
    if (choices.length === 0) {
      setText("gates-note", "This phone has no gates or events to scan for. Ask the organizer.");
      return;
    }
    choices.forEach(function (c) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = c.gateId ? "gate-choice" : "gate-choice no-gate";
      if (c.gateId) { b.dataset.gateId = c.gateId; }
      b.dataset.eventId = c.eventId;
      const name = document.createElement("span");
      name.textContent = c.gateId ? c.gate.name : "No gates — scan anywhere";
      b.appendChild(name);
      const sub = [];
      if (c.event) { sub.push(c.event); }
      if (c.gate && c.gate.reentry === "in_out") { sub.push("in and out"); }
      if (c.gate && c.gate.rules_text) { sub.push(c.gate.rules_text); }
      if (sub.length) {
        const s = document.createElement("span");
        s.className = "sub";
        s.textContent = sub.join(" · ");
        b.appendChild(s);
      }
      b.addEventListener("click", function () {
        store.set(KEY_GATE, JSON.stringify({ event_id: c.eventId, gate_id: c.gateId }));
        startScanning(c);
      });
      list.appendChild(b);
    });
  }

  // What the picker shows, to redraw it only when that changed (a redraw
  // under a finger loses the tap).
  function choicesKey(choices) {
    return JSON.stringify(choices.map(function (c) {
      return [c.gateId, c.eventId, c.event, c.gate && c.gate.name, c.gate && c.gate.reentry, c.gate && c.gate.rules_text];
    }));
  }

  function describeGate(c) {
    $("gate-name").textContent = c.gateId ? c.gate.name : "No gate";
    $("gate-event").textContent = c.event || (c.gateId ? "" : "the whole event");
    const inOut = Boolean(c.gate && c.gate.reentry === "in_out");
    show($("direction"), inOut);
    if (!inOut) { setDirection("in"); }
    show($("counts"), Boolean(c.gateId));
  }

  function showFigures(f) {
    if (!f) { return; }
    $("count-inside").textContent = String(f.inside);
    $("count-entries").textContent = String(f.entries);
    $("count-rate").textContent = String(f.scans_last_minute);
  }

  function startScanning(choice) {
    state.choice = choice;
    setDirection("in");
    $("count-inside").textContent = "–";
    $("count-entries").textContent = "–";
    $("count-rate").textContent = "–";
    describeGate(choice);
    if (choice.gate && choice.gate.figures) { showFigures(choice.gate.figures); }
    setScreen("scan");
    $("scan-status").textContent = "";
    startScanCamera();
  }

  function setDirection(d) {
    state.direction = d;
    $("dir-in").setAttribute("aria-pressed", String(d === "in"));
    $("dir-out").setAttribute("aria-pressed", String(d === "out"));
    document.body.classList.toggle("dir-out", d === "out");
  }

  // ---- Scanning ---------------------------------------------------------

  function startScanCamera() {
    show($("camera-start"), false);
    document.body.classList.remove("camera-off");
    camera.start($("scan-video"), "camera-note", function (text) { submit(text, "camera"); });
  }

  // One path for the camera, the manual form and the test hook.
  function submit(raw, source) {
    const code = String(raw == null ? "" : raw).trim();
    if (!code || !state.choice || state.busy) { return false; }
    if (source === "camera") {
      if (state.shown || !repeats.accept(code, Date.now())) { return false; }
    } else {
      repeats.sent(code);
      if (state.shown) { hideResult(); }
    }
    const body = { code: code, event_id: state.choice.eventId };
    if (state.choice.gateId) { body.gate = state.choice.gateId; }
    if (state.direction === "out" && state.choice.gate && state.choice.gate.reentry === "in_out") {
      body.direction = "out";
    }
    state.lastSource = source;
    send(body);
    return true;
  }

  async function send(body) {
    state.busy = true;
    camera.pause(true);
    $("manual-submit").disabled = true;
    $("override-submit").disabled = true;
    $("scan-status").textContent = "Checking…";
    const res = await api("POST", "/api/v1/scan", body);
    state.busy = false;
    $("manual-submit").disabled = false;
    $("override-submit").disabled = false;
    $("scan-status").textContent = "";
    if (res.status === 401) { unpaired(); return; }
    state.lastRequest = body;
    if (res.ok && res.data && typeof res.data.result === "string") {
      if (state.lastSource === "manual") { $("manual-code").value = ""; }
      countScan(res.data);
      showVerdict(res.data);
    } else {
      const look = problemLook(res);
      showResult(look.tone, look.result, look.word, look.reason, look.explanation, []);
      if (res.status === 422 && res.data && Array.isArray(res.data.errors) &&
          res.data.errors.some(function (e) { return e && e.field === "gate"; })) {
        loadMe(true); // the gate may have gone
      }
    }
  }

  function countScan(out) {
    if (!state.choice || !state.choice.gateId || out.gate_id !== state.choice.gateId) { return; }
    if (typeof out.inside === "number") { $("count-inside").textContent = String(out.inside); }
    bump("count-rate");
    if (out.result === "admitted") { bump("count-entries"); }
  }

  // Until the next refresh brings the gate's own figures.
  function bump(id) {
    const n = parseInt($(id).textContent, 10);
    if (!isNaN(n)) { $(id).textContent = String(n + 1); }
  }

  function showVerdict(out) {
    const look = resultLook(out.result);
    const details = [];
    if (out.result === "already_admitted" && out.first_admitted_at) {
      details.push(["result-first", "First in at " + localTime(out.first_admitted_at)]);
    }
    const ticket = out.ticket || {};
    const seat = seatText(ticket.seat);
    if (seat) { details.push(["result-seat", seat]); }
    if (ticket.holder && ticket.holder.name) { details.push(["result-holder", "Holder: " + ticket.holder.name]); }
    if (out.overridden) { details.push(["result-override-note", "Admitted by a supervisor's override"]); }
    showResult(look.tone, out.result, look.word, out.reason, out.explanation, details);
    if (overridable(out.result, state.me && state.me.role) && !out.overridden) {
      show($("override"), true);
    }
  }

  // ---- The result -------------------------------------------------------

  function showResult(tone, result, word, reason, explanation, details) {
    clearTimeout(dismissTimer);
    const el = $("result");
    el.className = "result " + tone;
    el.dataset.result = result;
    $("result-word").textContent = word;
    $("result-reason").textContent = reason || "";
    setText("result-explanation", explanation || "");
    ["result-first", "result-seat", "result-holder", "result-override-note"].forEach(function (id) { setText(id, ""); });
    details.forEach(function (d) { setText(d[0], d[1]); });
    resetOverride();
    show(el, true);
    state.shown = { tone: tone, result: result, at: Date.now() };
    if (document.activeElement && document.activeElement.blur) { document.activeElement.blur(); }
    $("result-dismiss").focus({ preventScroll: true });
    feedback.signal(tone);
    if (tone === "green") { dismissTimer = setTimeout(dismissResult, GREEN_SHOWN_MS); }
  }

  function hideResult() {
    clearTimeout(dismissTimer);
    show($("result"), false);
    resetOverride();
    state.shown = null;
  }

  function dismissResult() {
    if (!state.shown) { return; }
    hideResult();
    repeats.dismissed(Date.now());
    camera.pause(false);
    if (state.lastSource === "manual" && !camera.running()) { $("manual-code").focus(); }
  }

  function resetOverride() {
    show($("override"), false);
    show($("override-open"), true);
    show($("override-form"), false);
    setText("override-error", "");
    $("override-reason").value = "";
  }

  function onResultTap(ev) {
    if (!state.shown || ev.target.closest("#override")) { return; }
    if (state.shown.tone !== "green" && Date.now() - state.shown.at < MIN_SHOWN_MS) { return; }
    dismissResult();
  }

  function openOverride(ev) {
    ev.stopPropagation();
    clearTimeout(dismissTimer);
    show($("override-open"), false);
    show($("override-form"), true);
    $("override-reason").focus();
  }

  function onOverrideSubmit(ev) {
    ev.preventDefault();
    ev.stopPropagation();
    const reason = $("override-reason").value.trim();
    if (!reason) {
      setText("override-error", "Say why: it goes in the scan log.");
      return;
    }
    if (!state.lastRequest || state.busy) { return; }
    const body = Object.assign({}, state.lastRequest, { override_reason: reason.slice(0, 500) });
    state.lastSource = "override";
    send(body);
  }

  // ---- Sound and vibration ---------------------------------------------

  const feedback = {
    audio: null,
    // Browsers allow sound only after a gesture: made on the first one.
    unlock: function () {
      try {
        if (!feedback.audio) {
          const Ctx = root.AudioContext || root.webkitAudioContext;
          if (!Ctx) { return; }
          feedback.audio = new Ctx();
        }
        if (feedback.audio.state === "suspended") { feedback.audio.resume(); }
      } catch (e) { feedback.audio = null; }
    },
    beep: function (freq, start, length) {
      const a = feedback.audio;
      const t = a.currentTime + start;
      const osc = a.createOscillator();
      const gain = a.createGain();
      osc.type = "square";
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, t);
      gain.gain.exponentialRampToValueAtTime(0.4, t + 0.01);
      gain.gain.setValueAtTime(0.4, t + length - 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + length);
      osc.connect(gain);
      gain.connect(a.destination);
      osc.start(t);
      osc.stop(t + length + 0.02);
    },
    signal: function (tone) {
      if (feedback.audio && feedback.audio.state === "running") {
        try {
          if (tone === "green") {
            feedback.beep(1760, 0, 0.12);
          } else if (tone === "amber") {
            feedback.beep(880, 0, 0.3);
          } else {
            feedback.beep(220, 0, 0.2);
            feedback.beep(220, 0.3, 0.2);
          }
        } catch (e) { /* no sound, the screen still says it */ }
      }
      if (typeof navigator.vibrate === "function") {
        const pattern = tone === "green" ? 80 : tone === "amber" ? [200, 100, 200] : [400, 150, 400, 150, 400];
        try { navigator.vibrate(pattern); } catch (e) { /* no vibration */ }
      }
    },
  };

  // ---- The camera -------------------------------------------------------

  // One camera at a time, for the pairing QR or for tickets; decodes
  // downscaled frames every DECODE_EVERY_MS while not paused.
  const camera = (function () {
    let stream = null;
    let video = null;
    let onCode = null;
    let noteId = null;
    let paused = false;
    let frame = 0;
    let last = 0;
    let generation = 0; // a stop while getUserMedia is pending wins
    const canvas = document.createElement("canvas");
    let ctx = null;

    function note(text) { if (noteId) { setText(noteId, text); } }

    function failed(e) {
      const name = e && e.name;
      if (name === "NotAllowedError" || name === "SecurityError") {
        return "The camera is not allowed. Allow it in the browser's settings for this site, or type codes below.";
      }
      if (name === "NotFoundError" || name === "OverconstrainedError") {
        return "No camera found. Type codes below.";
      }
      if (name === "NotReadableError") {
        return "The camera is in use by another app. Close it and tap Start camera.";
      }
      return "The camera did not start. Type codes below, or tap Start camera to try again.";
    }

    function offerStart() {
      if (noteId === "camera-note") {
        show($("camera-start"), true);
        document.body.classList.add("camera-off");
      }
    }

    async function start(videoEl, noteElId, handler) {
      stop();
      const mine = ++generation;
      video = videoEl;
      onCode = handler;
      noteId = noteElId;
      paused = false;
      note("");
      const md = navigator.mediaDevices;
      if (!md || typeof md.getUserMedia !== "function") {
        note("This browser cannot use the camera here (it needs HTTPS). Type codes below.");
        offerStart();
        return;
      }
      if (typeof root.jsQR !== "function") {
        note("The QR reader did not load. Type codes below.");
        offerStart();
        return;
      }
      let s;
      try {
        s = await md.getUserMedia({ video: { facingMode: "environment", width: { ideal: 1280 }, height: { ideal: 720 } }, audio: false });
      } catch (e) {
        if (mine === generation) { note(failed(e)); offerStart(); }
        return;
      }
      if (mine !== generation) { s.getTracks().forEach(function (t) { t.stop(); }); return; }
      stream = s;
      video.srcObject = s;
      video.muted = true;
      video.setAttribute("playsinline", "");
      try {
        await video.play();
      } catch (e) {
        if (mine === generation) { note("Tap Start camera to scan."); offerStart(); }
        return;
      }
      if (mine !== generation) { return; }
      show($("camera-start"), false);
      document.body.classList.remove("camera-off");
      frame = root.requestAnimationFrame(tick);
    }

    function tick(now) {
      if (!stream) { return; }
      frame = root.requestAnimationFrame(tick);
      if (paused || now - last < DECODE_EVERY_MS || !video || video.readyState < 2) { return; }
      last = now;
      const text = decode();
      if (text !== null && onCode) { onCode(text); }
    }

    function decode() {
      const w = video.videoWidth;
      const h = video.videoHeight;
      if (!w || !h) { return null; }
      const scale = Math.min(1, DECODE_WIDTH / w);
      const cw = Math.round(w * scale);
      const ch = Math.round(h * scale);
      if (canvas.width !== cw || canvas.height !== ch || !ctx) {
        canvas.width = cw;
        canvas.height = ch;
        ctx = canvas.getContext("2d", { willReadFrequently: true });
      }
      try {
        ctx.drawImage(video, 0, 0, cw, ch);
        const img = ctx.getImageData(0, 0, cw, ch);
        const qr = root.jsQR(img.data, cw, ch, { inversionAttempts: "dontInvert" });
        return qr && qr.data ? qr.data : null;
      } catch (e) {
        return null;
      }
    }

    function stop() {
      generation++;
      if (frame) { root.cancelAnimationFrame(frame); frame = 0; }
      if (stream) { stream.getTracks().forEach(function (t) { t.stop(); }); }
      stream = null;
      if (video) { video.srcObject = null; }
    }

    return {
      start: start,
      stop: stop,
      pause: function (p) { paused = p; },
      running: function () { return stream !== null; },
    };
  })();

  // ---- Wiring -----------------------------------------------------------

  function wire() {
    $("pair-form").addEventListener("submit", onPairSubmit);
    $("pair-scan").addEventListener("click", startPairScan);
    $("pair-scan-stop").addEventListener("click", stopPairScan);
    $("change-gate").addEventListener("click", function () {
      camera.stop();
      showGatePicker(gateChoices(state.me), "");
    });
    $("dir-in").addEventListener("click", function () { setDirection("in"); });
    $("dir-out").addEventListener("click", function () { setDirection("out"); });
    $("camera-start").addEventListener("click", startScanCamera);
    $("manual-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      submit($("manual-code").value, "manual");
    });
    $("result").addEventListener("click", onResultTap);
    $("result-dismiss").addEventListener("click", function (ev) {
      ev.stopPropagation();
      dismissResult();
    });
    $("override-open").addEventListener("click", openOverride);
    $("override-form").addEventListener("submit", onOverrideSubmit);
    $("override-reason").addEventListener("input", function () { setText("override-error", ""); });
    document.addEventListener("keydown", function (ev) {
      if (ev.key === "Escape" && state.shown) { dismissResult(); }
    });
    ["click", "touchend", "keydown"].forEach(function (type) {
      document.addEventListener(type, feedback.unlock, { capture: true, passive: true });
    });
    // A hidden page gives the camera back; it is taken again on return.
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) {
        camera.stop();
      } else if (document.body.dataset.screen === "scan" && !document.body.classList.contains("camera-off")) {
        startScanCamera();
        loadMe(true);
      } else if (document.body.dataset.screen === "pair" && !$("pair-camera").hidden) {
        startPairScan();
      }
    });
    setInterval(function () {
      const screen = document.body.dataset.screen;
      if (document.hidden || state.refreshing || !state.token || (screen !== "scan" && screen !== "gates")) { return; }
      state.refreshing = true;
      loadMe(true).finally(function () { state.refreshing = false; });
    }, REFRESH_MS);
  }

  function registerWorker() {
    if (!("serviceWorker" in navigator)) { return; }
    navigator.serviceWorker.register("/scan/sw.js", { scope: "/scan" }).catch(function () {
      // Not installable here (plain HTTP on a LAN address): the page works.
    });
  }

  // A pairing link opened on this page (`#pair=CODE`): on load, or when the
  // link is opened while the app is already showing. True if it took over.
  function followPairLink() {
    const pairLink = /(?:^#?|[#&])pair=/.test(root.location.hash || "");
    const code = pairLink ? pairCodeFromHash(root.location.hash) : null;
    if (pairLink) {
      // The code must not stay in the address bar, history or a bookmark.
      root.history.replaceState(null, "", root.location.pathname + root.location.search);
    }
    if (code) {
      hideResult();
      pairWith(code);
      return true;
    }
    if (pairLink && !state.token) {
      showPairing("That pairing link has no valid code. Type the code shown under the QR code.");
      return true;
    }
    return false;
  }

  function start() {
    wire();
    registerWorker();
    root.voelgoedScanner = {
      submit: function (code) { return submit(code, "manual"); },
    };
    root.addEventListener("hashchange", followPairLink);
    if (followPairLink()) { return; }
    if (state.token) {
      loadMe(false);
    } else {
      showPairing("");
    }
  }

  start();
})(typeof window !== "undefined" ? window : globalThis);
