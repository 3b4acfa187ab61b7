// The widget's session core (webchat/static/cim-widget-core.js) under node's own test runner:
//   node --test webchat/tests/
// (tests/test_widget_core.py runs this from `bash scripts/test`).
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const vm = require("node:vm");

const CORE_PATH = path.join(__dirname, "..", "static", "cim-widget-core.js");
const WIDGET_PATH = path.join(__dirname, "..", "static", "cim-widget.js");
const Core = require(CORE_PATH);

// The transport the core is handed: what socket.io-client's Socket offers the core (connected,
// timeout(ms).emit(event, payload, cb)). Each emit is recorded; the test answers it by hand:
// ack(...) as the server would, or expire() as socket.io's timeout does.
class Transport {
  constructor() { this.connected = true; this.sent = []; }
  timeout(ms) {
    return { emit: (event, payload, cb) => { this.sent.push({ event, payload, cb, ms }); } };
  }
  last(event) { return this.sent.filter((e) => e.event === event).pop(); }
  ack(entry, value) { entry.cb(null, value); }
  expire(entry) { entry.cb(new Error("operation has timed out")); }
}

let counter = 0;
function session(extra) {
  return new Core.Session(Object.assign({ newId: () => "id-" + (++counter), sendTimeoutMs: 50 }, extra || {}));
}

const NOTICE = { notice_id: 7, version: 3, lang: "pl", text: "Informacja.\n\nDruga część.", consultants_available: true,
                 max_message_length: 2000 };

// The widget's catalogs, read from cim-widget.js itself (the DOM part) in a sandbox: just the STRINGS literal.
function widgetStrings() {
  const src = fs.readFileSync(WIDGET_PATH, "utf8");
  const m = /^( *)var STRINGS = (\{[\s\S]*?\n\1\});$/m.exec(src);
  assert.ok(m, "STRINGS found in cim-widget.js");
  return vm.runInNewContext("(" + m[2] + ")", {});
}

/* ---------- the outbox ---------- */

test("a message keeps its client_msg_id across a timed-out send and a reconnect", () => {
  const s = session();
  const t = new Transport();
  const { entry } = s.compose("Dzień dobry");
  assert.ok(s.send(t, entry, () => {}));
  const first = t.last("send");
  assert.deepEqual(first.payload, { text: "Dzień dobry", client_msg_id: entry.id });
  assert.equal(first.ms, 50);
  t.expire(first);                         // the ack never came: sent again at once, same id
  const second = t.last("send");
  assert.notEqual(second, first);
  assert.equal(second.payload.client_msg_id, entry.id);
  t.connected = false;
  t.expire(second);                        // disconnected meanwhile: nothing more until the reconnect
  assert.equal(t.sent.length, 2);
  assert.equal(s.send(t, entry, () => {}), false);
  t.connected = true;                      // reconnected: flush sends it again with the same id
  const results = [];
  s.flush(t, (e, r) => results.push([e.id, r]));
  const third = t.last("send");
  assert.equal(t.sent.length, 3);
  assert.equal(third.payload.client_msg_id, entry.id);
  t.ack(third, { ok: true, seq: 5 });
  assert.deepEqual(results, [[entry.id, { ok: true, seq: 5 }]]);
  assert.equal(s.outbox.size, 0);
  // a late ack of an earlier attempt settles nothing twice
  t.ack(second, { ok: true, seq: 5 });
  assert.equal(results.length, 1);
});

test("the outbox survives a reload (same storage): the same ids are sent again, in order", () => {
  const storage = Core.memoryStorage();
  const before = session({ storage });
  before.setToken("tok");
  const a = before.compose("pierwsza").entry;
  const b = before.compose("druga").entry;
  const c = before.compose("trzecia").entry;
  before.onSendAck(b, { ok: true, seq: 3 });   // the middle one was acknowledged
  const after = session({ storage });          // the page reloaded
  assert.deepEqual(after.outbox.list(), [{ id: a.id, text: "pierwsza" }, { id: c.id, text: "trzecia" }]);
  assert.deepEqual(after.auth(), { lang: "pl", resume: "tok" });
  const t = new Transport();
  after.flush(t, () => {});
  assert.deepEqual(t.sent.map((e) => e.payload.client_msg_id), [a.id, c.id]);
  assert.deepEqual(t.sent.map((e) => e.payload.text), ["pierwsza", "trzecia"]);
});

test("messages queue in the order they were typed, while offline too", () => {
  const s = session();
  const t = new Transport();
  t.connected = false;
  const texts = ["1", "2", "3", "4"];
  const entries = texts.map((x) => s.compose(x).entry);
  entries.forEach((e) => s.send(t, e, () => {}));
  assert.equal(t.sent.length, 0);
  t.connected = true;
  s.flush(t, () => {});
  assert.deepEqual(t.sent.map((e) => e.payload.text), texts);
  assert.equal(new Set(entries.map((e) => e.id)).size, 4);
  // acks out of order settle the right entries
  t.ack(t.sent[2], { ok: true, seq: 12 });
  t.ack(t.sent[0], { ok: true, seq: 10 });
  assert.deepEqual(s.outbox.list().map((e) => e.text), ["2", "4"]);
});

test("a stored outbox that is not a list of {id, text} is ignored", () => {
  for (const saved of ["text", 5, { id: "x" }, [null, 1, { id: 3, text: "x" }, { id: "", text: "y" }, { id: "ok", text: 4 }]]) {
    const storage = Core.memoryStorage();
    storage.set("outbox", saved);
    assert.deepEqual(session({ storage }).outbox.list(), [], JSON.stringify(saved));
  }
  const storage = Core.memoryStorage();
  storage.set("outbox", [{ id: "keep", text: "x", extra: 1 }, "junk"]);
  assert.deepEqual(session({ storage }).outbox.list(), [{ id: "keep", text: "x" }]);
});

/* ---------- acks ---------- */

test("send acks: ok with its seq, and each error code with what the widget does about it", () => {
  const cases = [
    [{ ok: true, seq: 4 }, { ok: true, seq: 4 }],
    [{ ok: true }, { ok: true, seq: null }],
    [{ ok: false, error: { code: "rate_limited", message: "slow down" } }, { retry: true, close: false, disable: false }],
    [{ ok: false, error: { code: "server_error" } }, { retry: true }],
    [{ ok: false, error: { code: "closed" } }, { retry: false, close: true }],
    [{ ok: false, error: { code: "offline" } }, { disable: true, retry: false }],
    [{ ok: false, error: { code: "too_long" } }, { retry: false, close: false, disable: false }],
    [{ ok: false, error: { code: "resume_invalid" } }, { resumeInvalid: true }],
    [{ ok: false, error: { code: "made_up" } }, { error: { code: "unknown" } }],
    [{ ok: false, error: { code: "invalid", reason: "chat_open", message: "a chat is open" } },
     { error: { code: "invalid", reason: "chat_open" }, retry: false }],
    [{ ok: false, error: { code: "invalid", reason: "made_up", message: "m" } }, { error: { code: "invalid" } }],
    [{ ok: false }, { error: { code: "server_error" }, retry: true }],
  ];
  for (const [ack, want] of cases) {
    const s = session();
    s.setToken("tok");
    const { entry } = s.compose("x");
    const got = s.onSendAck(entry, ack);
    for (const [k, v] of Object.entries(want)) { assert.deepEqual(got[k], v, JSON.stringify(ack) + " " + k); }
    assert.equal(s.outbox.size, 0);
    assert.equal(s.token(), ack.error && ack.error.code === "resume_invalid" ? null : "tok");
  }
});

test("the accept ack opens the chat or says why not", () => {
  const s = session();
  s.onNotice(NOTICE);
  assert.deepEqual(s.acceptRequest(null), { payload: { notice_id: 7 } });
  assert.deepEqual(s.onAcceptAck(null, { ok: false, error: { code: "offline", message: "closed" } }),
                   { ok: false, error: { code: "offline" } });
  assert.equal(s.phase, "notice");
  assert.deepEqual(s.onAcceptAck(new Error("timeout"), undefined), { ok: false, error: { code: "server_error" } });
  assert.deepEqual(s.onAcceptAck(null, { ok: false, error: { code: "rate_limited" } }).error.code, "rate_limited");
  assert.equal(s.token(), null);
  assert.deepEqual(s.onAcceptAck(null, { ok: true, chat_id: 1, resume_token: "r1", position: 2, estimated_wait_s: 90 }),
                   { ok: true, status: "queued" });
  assert.equal(s.token(), "r1");
  assert.equal(s.position, 2);
  assert.equal(s.wait, 90);
});

test("end acks: ok or closed end the chat, others do not", () => {
  const s = session();
  assert.deepEqual(s.onEndAck(null, { ok: true }), { closed: true });
  assert.deepEqual(s.onEndAck(null, { ok: false, error: { code: "closed" } }), { closed: true });
  assert.deepEqual(s.onEndAck(new Error("t"), null), { closed: false, error: { code: "server_error" } });
  assert.deepEqual(s.onEndAck(null, { ok: false, error: { code: "invalid", message: "m" } }),
                   { closed: false, error: { code: "invalid" } });
});

test("topics: offered ones must be chosen, none offered means none asked", () => {
  const s = session();
  s.onNotice(NOTICE);
  assert.deepEqual(s.onTopics(null, { ok: true, topics: [{ id: 1, label: "Podatki" }, { id: 2, label: "Meldunki" }] }),
                   [{ id: 1, label: "Podatki" }, { id: 2, label: "Meldunki" }]);
  assert.deepEqual(s.acceptRequest(null), { error: "topic_missing" });
  assert.equal(s.phase, "notice");
  assert.deepEqual(s.acceptRequest(2), { payload: { notice_id: 7, topic_id: 2 } });
  assert.equal(s.phase, "accepting");
  for (const ack of [{ ok: true, topics: [] }, { ok: false }, { ok: true, topics: "x" }, null]) {
    assert.equal(s.onTopics(null, ack), null);
  }
  assert.equal(s.onTopics(new Error("timeout"), { ok: true, topics: [{ id: 1, label: "x" }] }), null);
  assert.deepEqual(s.acceptRequest(null), { payload: { notice_id: 7 } });
});

/* ---------- state transitions ---------- */

test("notice → accepting → queued → chatting → closed", () => {
  const s = session();
  assert.equal(s.phase, "idle");
  s.connecting();
  assert.equal(s.phase, "connecting");
  assert.deepEqual(s.auth(), { lang: "pl" });
  const shown = s.onNotice(NOTICE);
  assert.equal(s.phase, "notice");
  assert.equal(shown.dropped, false);
  assert.equal(shown.notice.text, NOTICE.text);
  s.acceptRequest(null);
  assert.equal(s.phase, "accepting");
  // the first state event can come before the ack
  assert.deepEqual(s.onState({ status: "queued", position: 1 }), { status: "queued", closed: false, receipt: null });
  s.onAcceptAck(null, { ok: true, resume_token: "tok", position: 3 });
  assert.equal(s.phase, "queued");
  assert.equal(s.position, 1);            // the state event's position is newer than the ack's
  assert.deepEqual(s.auth(), { lang: "pl", resume: "tok" });
  s.onState({ status: "queued", position: 1, estimated_wait_s: null });
  assert.equal(s.wait, null);
  s.onState({ status: "active" });
  assert.equal(s.phase, "chatting");
  assert.equal(s.position, null);
  s.compose("x");
  const closed = s.onState({ status: "closed", receipt: { reference: "CZ-2026-12-02-ABCD", secret: "S" } });
  assert.deepEqual(closed, { status: "closed", closed: true, receipt: { reference: "CZ-2026-12-02-ABCD", secret: "S" } });
  assert.equal(s.phase, "closed");
  assert.equal(s.token(), null);          // nothing to resume any more
  assert.equal(s.closedToken, "tok");     // but the copy is fetched with it
  assert.equal(s.outbox.size, 0);
  assert.deepEqual(s.auth(), { lang: "pl" });
  // a later closed state carries no receipt and changes nothing
  assert.deepEqual(s.onState({ status: "closed" }), { status: "closed", closed: true, receipt: null });
});

test("a notice during an open chat means the server forgot it: token and outbox go", () => {
  const s = session();
  s.onNotice(NOTICE);
  s.acceptRequest(null);
  s.onAcceptAck(null, { ok: true, resume_token: "tok" });
  s.compose("pending");
  const shown = s.onNotice(NOTICE);
  assert.equal(shown.dropped, true);
  assert.equal(s.token(), null);
  assert.equal(s.outbox.size, 0);
  assert.equal(s.status, null);
  assert.equal(s.phase, "notice");
});

test("history on resume: status, position and wait from it; closed history closes", () => {
  const s = session();
  s.setToken("tok");
  const h = s.onHistory({ messages: [{ seq: 1, from: "system", text: "a", at: "2026-12-02T10:00:00Z", event: "queued", params: {} }],
                          state: { status: "active" } });
  assert.equal(h.status, "active");
  assert.equal(s.phase, "chatting");
  assert.equal(h.messages.length, 1);
  assert.equal(h.messages[0].event, "queued");
  s.onHistory({ messages: [], state: { status: "queued", position: 4, estimated_wait_s: 120 } });
  assert.equal(s.phase, "queued");
  assert.equal(s.position, 4);
  assert.equal(s.wait, 120);
  s.onHistory({ messages: [], state: { status: "closed" } });
  assert.equal(s.phase, "closed");
});

test("offline, declining and refused connections", () => {
  const s = session();
  s.setToken("old");
  s.compose("x");
  const off = s.onOffline({ message: "Nieczynne", hours: "pn–pt 8–16", phone: "91 424 50 00" });
  assert.deepEqual(off, { hours: "pn–pt 8–16", phone: "91 424 50 00", address: "", notice: null });
  assert.equal(s.phase, "offline");
  assert.equal(s.token(), null);
  assert.equal(s.outbox.size, 0);

  s.onNotice(NOTICE);
  s.decline();
  assert.equal(s.phase, "left");

  const r = session();
  r.setToken("forged");
  assert.deepEqual(r.onConnectError({ data: { code: "resume_invalid", message: "m" } }, false), { kind: "resume_invalid", code: "resume_invalid" });
  assert.equal(r.token(), null);
  assert.deepEqual(r.onConnectError(new Error("xhr poll error"), true), { kind: "retrying", code: null });
  assert.deepEqual(r.onConnectError({ data: { code: "offline", message: "closed", hours: "8-16" } }, false),
                   { kind: "offline", code: "offline", hours: "8-16" });
  assert.deepEqual(r.onConnectError({ data: { code: "too_many_connections", message: "m" } }, false),
                   { kind: "refused", code: "too_many_connections" });
  assert.equal(r.phase, "failed");
  assert.deepEqual(r.onConnectError({ data: { code: "weird" } }, false), { kind: "refused", code: "unknown" });
  assert.deepEqual(r.onConnectError(null, false), { kind: "refused", code: null });
});

/* ---------- language ---------- */

test("language: English only when asked for, Polish otherwise; sent at connect", () => {
  assert.equal(Core.pickLang("en"), "en");
  assert.equal(Core.pickLang("EN"), "en");
  for (const v of ["pl", "", null, undefined, "de", 5, "english"]) { assert.equal(Core.pickLang(v), "pl", String(v)); }
  assert.deepEqual(session({ lang: "en" }).auth(), { lang: "en" });
  assert.deepEqual(session({ lang: "xx" }).auth(), { lang: "pl" });
});

test("system lines and errors in the widget's language, from its own catalogs", () => {
  const STRINGS = widgetStrings();
  assert.deepEqual(Object.keys(STRINGS).sort(), ["en", "pl"]);
  const line = { from: "system", event: "accepted", params: { consultant: "Anna" }, text: "server text" };
  assert.equal(Core.systemText(line, STRINGS.pl), "Połączono z konsultantem. Odpowiada: Anna.");
  assert.equal(Core.systemText(line, STRINGS.en), "You are now connected with a consultant. Answering: Anna.");
  assert.equal(Core.systemText({ event: "accepted", params: { consultant: null } }, STRINGS.en),
               "You are now connected with a consultant.");
  assert.equal(Core.systemText({ event: "no_such_event", text: "as stored" }, STRINGS.pl), "as stored");
  assert.equal(Core.systemText({ event: "toString", text: "t" }, STRINGS.pl), "t");
  assert.equal(Core.errorText({ code: "rate_limited" }, STRINGS.en.errors, 2000),
               "You are sending messages too quickly. Please wait a moment and try again.");
  assert.equal(Core.errorText({ code: "constructor" }, STRINGS.pl.errors, 2000), STRINGS.pl.errors.unknown);
  assert.equal(Core.errorText(null, STRINGS.pl.errors, 2000), STRINGS.pl.errors.unknown);
});

test("ERROR_CODES is the one list of the server's codes, and both catalogs have a text for each", () => {
  const STRINGS = widgetStrings();
  assert.equal(new Set(Core.ERROR_CODES).size, Core.ERROR_CODES.length);
  assert.ok(Core.ERROR_CODES.includes("too_long") && Core.ERROR_CODES.includes("resume_invalid"));
  for (const lang of ["pl", "en"]) {
    assert.deepEqual(Object.keys(STRINGS[lang].errors).sort(), [...Core.ERROR_CODES, "unknown"].sort(), lang);
  }
  for (const code of Core.ERROR_CODES) { assert.equal(Core.errorCode({ code }), code); }
});

test("refusals by reason: the widget's own text in its language, never the server's message", () => {
  const STRINGS = widgetStrings();
  const server = "the contact is not an e-mail address (name@domain) or a phone number";
  const refused = { code: "invalid", reason: "contact_invalid", message: server };
  assert.equal(Core.errorText(refused, STRINGS.pl.errors, 2000, STRINGS.pl.reasons),
               "To nie jest adres e-mail (nazwa@domena) ani numer telefonu. Popraw kontakt.");
  assert.equal(Core.errorText(refused, STRINGS.en.errors, 2000, STRINGS.en.reasons),
               "This is neither an e-mail address (name@domain) nor a phone number. Please correct it.");
  // a reason the widget does not know, or no reason: the code's text; the message is never shown
  for (const err of [{ code: "invalid", reason: "new_reason", message: server }, { code: "invalid", message: server }]) {
    assert.equal(Core.errorText(err, STRINGS.pl.errors, 2000, STRINGS.pl.reasons), STRINGS.pl.errors.invalid);
  }
  assert.equal(Core.errorText({ code: "made_up", message: server }, STRINGS.en.errors, 2000, STRINGS.en.reasons),
               STRINGS.en.errors.unknown);
  assert.equal(Core.errorText({ code: "invalid", reason: "toString" }, STRINGS.pl.errors, 2000, STRINGS.pl.reasons),
               STRINGS.pl.errors.invalid);
  // what the session keeps of a refusal has no server words in it
  const s = session();
  const { entry } = s.compose("x");
  const got = s.onSendAck(entry, { ok: false, error: { code: "rate_limited", message: "slow down" } });
  assert.deepEqual(got.error, { code: "rate_limited" });
  assert.ok(!JSON.stringify(s.onConnectError({ data: { code: "offline", message: "Czat nieczynny", hours: "8-16" } }, false))
    .includes("Czat nieczynny"));
  assert.equal(Core.errorReason({ code: "invalid", reason: "already_rated" }), "already_rated");
  assert.equal(Core.errorReason({ code: "invalid", reason: 5 }), null);
  assert.equal(Core.errorReason(null), null);
});

test("ERROR_REASONS has no duplicates and both catalogs have a text for each reason, in their own words", () => {
  const STRINGS = widgetStrings();
  assert.equal(new Set(Core.ERROR_REASONS).size, Core.ERROR_REASONS.length);
  for (const lang of ["pl", "en"]) {
    assert.deepEqual(Object.keys(STRINGS[lang].reasons).sort(), [...Core.ERROR_REASONS].sort(), lang);
  }
  for (const reason of Core.ERROR_REASONS) { assert.notEqual(STRINGS.pl.reasons[reason], STRINGS.en.reasons[reason]); }
});

test("the widget's DOM part decides nothing by the server's words: no test or match on a message", () => {
  const src = fs.readFileSync(WIDGET_PATH, "utf8") + fs.readFileSync(CORE_PATH, "utf8");
  assert.doesNotMatch(src, /\.message\b/);
  assert.doesNotMatch(src, /\.text\)\.match\(|String\(textAck\.text\)/);
});

/* ---------- the length limit ---------- */

test("the length limit is the server's: from notice, offline or history, else the default", () => {
  const s = session();
  assert.equal(s.maxLength, Core.DEFAULT_MAX_LENGTH);
  s.onNotice({ ...NOTICE, max_message_length: 50 });
  assert.equal(s.maxLength, 50);
  assert.deepEqual(s.compose("x".repeat(51)), { error: { code: "too_long" } });
  assert.equal(s.compose("x".repeat(50)).entry.text.length, 50);
  s.onHistory({ messages: [], state: { status: "active" }, max_message_length: 3000 });
  assert.equal(s.maxLength, 3000);
  assert.ok(s.compose("x".repeat(2500)).entry);
  s.onOffline({ message: "m", max_message_length: 120 });
  assert.equal(s.maxLength, 120);
  // nonsense leaves the last good value
  for (const bad of [0, -5, 1.5, "100", null, true, NaN, Infinity, 1e9, {}, []]) {
    s.onNotice({ ...NOTICE, max_message_length: bad });
    assert.equal(s.maxLength, 120, String(bad));
  }
  s.onNotice({ notice_id: 1 });            // a server that does not say keeps it too
  assert.equal(s.maxLength, 120);
  const STRINGS = widgetStrings();
  assert.equal(Core.errorText({ code: "too_long" }, STRINGS.pl.errors, s.maxLength),
               "Wiadomość jest za długa. Limit to 120 znaków.");
  assert.equal(STRINGS.en.counter(7, s.maxLength), "7 / 120 characters");
  assert.deepEqual(s.compose("   \n"), { error: { code: "empty" } });
});

/* ---------- hostile payloads ---------- */

const HOSTILE = [undefined, null, 0, 1, -1, NaN, true, false, "", "text", [], [1, 2], {}, { toString: 5 },
                 Object.create(null), { state: "x", messages: "x" }, { state: [], messages: [null, 5, "a", []] },
                 { status: 5, position: "3", estimated_wait_s: "soon", receipt: "r" },
                 { status: "bogus", receipt: { reference: 5 } },
                 { ok: true, seq: "7", resume_token: 123, position: {}, topics: [null, { id: {}, label: 1 }, { id: 1 }] },
                 { ok: "yes", error: "boom" }, { ok: false, error: { code: 12, message: {} } },
                 { notice_id: {}, version: [], lang: 5, text: 10, consultants_available: "no", max_message_length: "9" },
                 { message: 5, hours: 7, phone: {}, address: [], notice: "n" },
                 { seq: {}, from: 5, text: { a: 1 }, at: {}, event: 7, params: "p" },
                 { data: "x" }, { data: { code: 5 } }];

test("no payload the server may send makes the core throw", () => {
  for (const p of HOSTILE) {
    const label = (() => { try { return JSON.stringify(p); } catch (e) { return String(p); } })();
    const s = session();
    s.setToken("tok");
    const t = new Transport();
    assert.doesNotThrow(() => {
      s.onNotice(p);
      s.acceptRequest(null);
      s.onAcceptAck(null, p);
      s.onTopics(null, p);
      s.onState(p);
      s.onHistory(p);
      s.onMessage(p);
      const { entry } = s.compose("x");
      s.send(t, entry, () => {});
      t.ack(t.last("send"), p);
      s.onSendAck(s.compose("y").entry, p);
      s.onEndAck(null, p);
      s.onOffline(p);
      s.onConnectError(p, false);
      Core.systemText(p, widgetStrings().pl);
      Core.errorText(p, widgetStrings().pl.errors, s.maxLength);
      Core.parseTime(p);
    }, label);
    assert.ok(["queued", "active", "closed", null].includes(s.status), label);
    assert.ok(s.position === null || typeof s.position === "number", label);
    assert.equal(typeof s.maxLength, "number", label);
  }
});

test("hostile values come out as neutral ones of the right type", () => {
  const m = Core.normalizeMessage({ seq: "7", from: "admin", text: { a: 1 }, at: {}, event: 7, params: "p" });
  assert.deepEqual(m, { seq: null, from: "system", text: "", at: null, event: null, params: {} });
  assert.equal(Core.normalizeMessage("text"), null);
  assert.equal(Core.normalizeMessage({ seq: 3, from: "consultant", text: "hi" }).at, undefined);
  const n = Core.normalizeNotice({ notice_id: {}, lang: 5, text: 10, consultants_available: "no" });
  assert.deepEqual(n, { notice_id: null, version: null, lang: null, text: "", consultants_available: null });
  const s = session();
  s.onNotice(null);
  assert.equal(s.notice.text, "");
  assert.deepEqual(s.acceptRequest(null), { payload: { notice_id: null } });
  s.onAcceptAck(null, { ok: true, resume_token: 123, position: "3" });
  assert.equal(s.token(), null);
  assert.equal(s.position, null);
  assert.equal(s.onState({ status: "closed", receipt: { reference: 5 } }).receipt, null);
  assert.deepEqual(Core.normalizeOffline({ message: 5, hours: 7, phone: {}, notice: "n" }),
                   { hours: null, phone: "", address: "", notice: null });
  assert.deepEqual(Core.normalizeTopics([null, { id: {}, label: 1 }, { id: 1 }, { id: 2, label: 3 }]), [{ id: 2, label: "3" }]);
  assert.equal(Core.parseTime({}), null);
  assert.equal(Core.parseTime("not a date"), null);
  assert.equal(Core.parseTime(1764669600).toISOString(), "2025-12-02T10:00:00.000Z");
});

/* ---------- loading ---------- */

test("the core loads as a plain browser script too: window.CIMWidgetCore, no DOM, no io", () => {
  const sandbox = { self: {}, crypto: { randomUUID: () => "uuid-1" } };
  sandbox.self = sandbox;
  vm.runInNewContext(fs.readFileSync(CORE_PATH, "utf8"), sandbox);
  const C = sandbox.CIMWidgetCore;
  assert.equal(typeof C.Session, "function");
  assert.deepEqual([...C.ERROR_CODES], Core.ERROR_CODES);
  const s = new C.Session({ lang: "en" });
  assert.equal(s.compose("hello").entry.id, "uuid-1");
  const code = fs.readFileSync(CORE_PATH, "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
  assert.doesNotMatch(code, /\bdocument\b|\bwindow\b|require\(|\bio\(|sessionStorage/);
});
