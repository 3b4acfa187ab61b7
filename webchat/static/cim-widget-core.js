/* CIM resident chat widget: the session core (protocol, outbox, state). No DOM, no Socket.IO import.
 *
 * Loaded by cim-widget.js from the same folder (/widget/cim-widget-core.js) as a plain script that sets
 * window.CIMWidgetCore, and by the node tests (webchat/tests/) through require(). The socket is handed
 * in by the caller: anything with on/emit/timeout(ms).emit/connected, as socket.io-client's Socket has.
 *
 * Every payload from the server is read defensively: a missing key or a value of the wrong type gives
 * the neutral value (null, "", []), never an exception.
 */
(function (root, factory) {
  "use strict";
  var core = factory();
  if (typeof module === "object" && module && module.exports) { module.exports = core; }
  else { root.CIMWidgetCore = core; }
}(typeof self !== "undefined" ? self : this, function () {
  "use strict";

  //: The error codes the server sends to /resident (docs/PROTOCOL.md "Error codes"), one text per code
  //: in cim-widget.js (STRINGS.*.errors); anything else reads as "unknown".
  var ERROR_CODES = ["notice_not_accepted", "empty", "too_long", "rate_limited", "closed", "invalid", "offline",
                     "server_error", "resume_invalid", "too_many_connections"];
  //: The reasons a refusal may carry beside its code (the server's RESIDENT_REASONS, docs/PROTOCOL.md
  //: "Refusal reasons"), one text per reason in cim-widget.js (STRINGS.*.reasons); others are ignored.
  var ERROR_REASONS = ["contact_missing", "contact_invalid", "contact_too_long", "name_too_long", "consultant_available",
                       "chat_open", "notice_outdated", "not_ended", "already_rated", "rating_invalid", "comment_too_long"];
  //: Until the server says otherwise (`max_message_length` in notice, offline and history).
  var DEFAULT_MAX_LENGTH = 2000;
  var MAX_LENGTH_CEILING = 1000000;   // a server value above this is not believed
  var SEND_TIMEOUT_MS = 15000;
  var TYPING_IDLE_MS = 2500;
  var REMOTE_TYPING_MAX_MS = 15000;
  var LANGS = ["pl", "en"];
  var STATUSES = ["queued", "active", "closed"];
  var SENDERS = ["resident", "consultant", "system"];

  var own = Object.prototype.hasOwnProperty;

  function isObject(x) { return x !== null && typeof x === "object" && !Array.isArray(x); }
  function str(x) { return typeof x === "string" ? x : ""; }
  function finite(x) { return typeof x === "number" && isFinite(x) ? x : null; }
  function oneOf(x, list) { return typeof x === "string" && list.indexOf(x) !== -1 ? x : null; }

  /* ---------- language, texts ---------- */

  // The widget's language from the script tag's data-lang: English when asked for, Polish otherwise.
  function pickLang(attr) {
    return typeof attr === "string" && attr.toLowerCase() === "en" ? "en" : "pl";
  }

  function errorCode(err) {
    var code = isObject(err) ? err.code : null;
    return oneOf(code, ERROR_CODES) || "unknown";
  }

  function errorReason(err) {
    return isObject(err) ? oneOf(err.reason, ERROR_REASONS) : null;
  }

  // A refusal as the widget keeps it: {code, reason?}. The server's `message` is left behind: the widget
  // says every refusal in its own words, in its own language.
  function refusalOf(err) {
    var out = { code: errorCode(err) };
    var reason = errorReason(err);
    if (reason) { out.reason = reason; }
    return out;
  }

  // The text for an error in the catalog's language: the reason's text when the catalog has one, else the
  // code's ({max}: the message length limit). Never the server's words.
  function errorText(err, errors, maxLength, reasons) {
    var code = errorCode(err);
    var reason = errorReason(err);
    var text = reason && isObject(reasons) && typeof reasons[reason] === "string" ? reasons[reason] :
      isObject(errors) && typeof errors[code] === "string" ? errors[code] : str(errors && errors.unknown);
    return text.replace(/\{max\}/g, String(maxLength == null ? DEFAULT_MAX_LENGTH : maxLength));
  }

  // A system line in the widget's language from its event code and parameters; the server's text otherwise.
  // catalog: {events: {code: template}, eventsUnnamed: {code: template}}.
  function systemText(m, catalog) {
    if (!isObject(m)) { return ""; }
    var events = catalog && isObject(catalog.events) ? catalog.events : {};
    var unnamed = catalog && isObject(catalog.eventsUnnamed) ? catalog.eventsUnnamed : {};
    var ev = typeof m.event === "string" ? m.event : null;
    if (!ev || !own.call(events, ev) || typeof events[ev] !== "string") { return str(m.text); }
    var params = isObject(m.params) ? m.params : {};
    var named = params.consultant != null && String(params.consultant) !== "";
    var template = !named && own.call(unnamed, ev) && typeof unnamed[ev] === "string" ? unnamed[ev] : events[ev];
    return template.replace(/\{(consultant|version)\}/g, function (_, key) {
      var v = params[key];
      return v == null || typeof v === "object" ? "" : String(v);
    });
  }

  function parseTime(at) {
    if (at == null || at === "" || (typeof at !== "string" && typeof at !== "number")) { return null; }
    var d = typeof at === "number" ? new Date(at < 1e12 ? at * 1000 : at) : new Date(at);
    return isNaN(d.getTime()) ? null : d;
  }

  /* ---------- payloads from the server, normalised ---------- */

  // The server's message length limit in a payload, or null when it gives none (or nonsense).
  function maxLengthFrom(payload) {
    var n = isObject(payload) ? payload.max_message_length : null;
    return typeof n === "number" && n % 1 === 0 && n >= 1 && n <= MAX_LENGTH_CEILING ? n : null;
  }

  // A transcript line: {seq (number|null), from, text, at, event (string|null), params}; null for a non-object.
  // `at` stays undefined when the server sent none (the line then shows no time).
  function normalizeMessage(m) {
    if (!isObject(m)) { return null; }
    var seq = finite(m.seq);
    var at = m.at;
    if (at !== undefined && at !== null && typeof at !== "string" && typeof at !== "number") { at = null; }
    return {
      seq: seq,
      from: oneOf(m.from, SENDERS) || "system",
      text: typeof m.text === "string" ? m.text : (typeof m.text === "number" ? String(m.text) : ""),
      at: at,
      event: typeof m.event === "string" ? m.event : null,
      params: isObject(m.params) ? m.params : {}
    };
  }

  function normalizeNotice(payload) {
    if (!isObject(payload)) { return null; }
    return {
      notice_id: typeof payload.notice_id === "number" || typeof payload.notice_id === "string" ? payload.notice_id : null,
      version: payload.version == null ? null : payload.version,
      lang: typeof payload.lang === "string" && payload.lang ? payload.lang : null,
      text: str(payload.text),
      consultants_available: payload.consultants_available === false ? false : payload.consultants_available === true ? true : null
    };
  }

  // hours: a string, a list, or an object of lists, as the server's settings give it; anything else: null.
  function normalizeHours(h) {
    if (typeof h === "string") { return h === "" ? null : h; }
    if (Array.isArray(h) || isObject(h)) { return h; }
    return null;
  }

  function normalizeOffline(payload) {
    var p = isObject(payload) ? payload : {};
    return {
      hours: normalizeHours(p.hours),
      phone: str(p.phone),
      address: str(p.address),
      notice: normalizeNotice(p.notice)
    };
  }

  function normalizeTopics(list) {
    if (!Array.isArray(list)) { return null; }
    var out = [];
    list.forEach(function (t) {
      if (!isObject(t) || (typeof t.id !== "number" && typeof t.id !== "string") || t.label == null) { return; }
      out.push({ id: t.id, label: String(t.label) });
    });
    return out.length ? out : null;
  }

  function newClientMsgId(crypto) {
    if (crypto && typeof crypto.randomUUID === "function") { return crypto.randomUUID(); }
    if (crypto && typeof crypto.getRandomValues === "function") {
      var b = crypto.getRandomValues(new Uint8Array(16));
      return Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
    }
    return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
  }

  // A storage that keeps values in memory: {get(key), set(key, value|null)}.
  function memoryStorage() {
    var data = {};
    return {
      get: function (key) { return own.call(data, key) ? JSON.parse(data[key]) : null; },
      set: function (key, value) { if (value == null) { delete data[key]; } else { data[key] = JSON.stringify(value); } }
    };
  }

  // A storage on a Web Storage object (sessionStorage) with a key prefix; storage errors are swallowed
  // (storage disabled: the chat still works, it just cannot survive a reload).
  function webStorage(backend, prefix) {
    return {
      get: function (key) {
        try { return JSON.parse(backend.getItem(prefix + key)); } catch (e) { return null; }
      },
      set: function (key, value) {
        try {
          if (value == null) { backend.removeItem(prefix + key); } else { backend.setItem(prefix + key, JSON.stringify(value)); }
        } catch (e) { /* see above */ }
      }
    };
  }

  /* ---------- the outbox: messages sent but not acknowledged, kept across reloads ---------- */

  function Outbox(storage, newId) {
    this.storage = storage;
    this.newId = newId;
    var saved = storage.get("outbox");
    this.items = Array.isArray(saved) ? saved.filter(function (e) {
      return isObject(e) && typeof e.id === "string" && e.id !== "" && typeof e.text === "string";
    }).map(function (e) { return { id: e.id, text: e.text }; }) : [];
  }
  Outbox.prototype.save = function () { this.storage.set("outbox", this.items.length ? this.items : null); };
  // A new entry with its client_msg_id: the id it keeps for every retry and reconnect.
  Outbox.prototype.add = function (text) {
    var entry = { id: String(this.newId()), text: text };
    this.items.push(entry);
    this.save();
    return entry;
  };
  Outbox.prototype.has = function (entry) { return this.items.indexOf(entry) !== -1; };
  // Take an entry out; false when it was not there (settled already, e.g. by a duplicate ack).
  Outbox.prototype.settle = function (entry) {
    var i = this.items.indexOf(entry);
    if (i === -1) { return false; }
    this.items.splice(i, 1);
    this.save();
    return true;
  };
  Outbox.prototype.list = function () { return this.items.slice(); };
  Outbox.prototype.clear = function () { this.items = []; this.save(); };
  Object.defineProperty(Outbox.prototype, "size", { get: function () { return this.items.length; } });

  /* ---------- the session ---------- */

  // phase: idle | connecting | notice | accepting | queued | chatting | closed | offline | left | failed
  function Session(opts) {
    opts = opts || {};
    this.lang = pickLang(opts.lang);
    this.storage = opts.storage || memoryStorage();
    this.sendTimeoutMs = opts.sendTimeoutMs || SEND_TIMEOUT_MS;
    var gen = opts.newId || function () { return newClientMsgId(typeof crypto !== "undefined" ? crypto : null); };
    this.outbox = new Outbox(this.storage, gen);
    this.maxLength = DEFAULT_MAX_LENGTH;
    this.closedToken = null;
    this.phase = "idle";
    this.reset();
  }

  Session.prototype.reset = function () {
    this.status = null;       // queued | active | closed (the server's chat status)
    this.position = null;     // place in the queue
    this.wait = null;         // estimated wait in seconds (null: unknown)
    this.notice = null;       // the notice shown (normalised)
    this.topics = null;       // [{id, label}] offered before the chat (null: none / not asked)
  };

  Session.prototype.token = function () {
    var t = this.storage.get("token");
    return typeof t === "string" && t !== "" ? t : null;
  };
  Session.prototype.setToken = function (t) { this.storage.set("token", typeof t === "string" && t !== "" ? t : null); };

  // The Socket.IO auth at every (re)connection: the language, and the resume token while a chat is open.
  Session.prototype.auth = function () {
    var a = { lang: this.lang };
    var t = this.token();
    if (t) { a.resume = t; }
    return a;
  };

  Session.prototype.connecting = function () { this.phase = "connecting"; };

  Session.prototype.learnLimits = function (payload) {
    var n = maxLengthFrom(payload);
    if (n != null) { this.maxLength = n; }
  };

  Session.prototype.inChat = function () { return this.phase === "queued" || this.phase === "chatting"; };

  Session.prototype.phaseFromStatus = function () {
    this.phase = this.status === "closed" ? "closed" : this.status === "active" ? "chatting" : "queued";
  };

  // The chat is over or unknown: forget the token and the outbox.
  Session.prototype.dropChat = function () {
    this.setToken(null);
    this.outbox.clear();
  };

  // `notice`: {notice, dropped} (dropped: the server no longer knows our open chat: closed or expired).
  Session.prototype.onNotice = function (payload) {
    var dropped = false;
    if (this.inChat() && this.status !== "closed" && this.token()) { this.dropChat(); dropped = true; }
    this.learnLimits(payload);
    this.status = null;
    this.position = null;
    this.notice = normalizeNotice(payload) || normalizeNotice({});
    this.phase = "notice";
    return { notice: this.notice, dropped: dropped };
  };

  Session.prototype.onOffline = function (payload) {
    this.learnLimits(payload);
    this.dropChat();
    this.phase = "offline";
    return normalizeOffline(payload);
  };

  // `history` (on resume): {messages, status}; the outbox is kept and sent again by the caller.
  Session.prototype.onHistory = function (payload) {
    var p = isObject(payload) ? payload : {};
    var st = isObject(p.state) ? p.state : {};
    this.learnLimits(p);
    this.status = oneOf(st.status, STATUSES) || this.status || "queued";
    this.position = finite(st.position);
    this.wait = finite(st.estimated_wait_s);
    this.phaseFromStatus();
    var messages = Array.isArray(p.messages) ? p.messages.map(normalizeMessage).filter(Boolean) : [];
    return { messages: messages, status: this.status };
  };

  Session.prototype.onMessage = function (m) { return normalizeMessage(m); };

  // `state`: null for a non-object; else {status, closed (true when the chat is now closed), receipt}.
  Session.prototype.onState = function (st) {
    if (!isObject(st)) { return null; }
    this.status = oneOf(st.status, STATUSES) || this.status;
    var pos = finite(st.position);
    this.position = pos != null ? pos : (this.status === "queued" ? this.position : null);
    if (st.estimated_wait_s !== undefined) { this.wait = finite(st.estimated_wait_s); }
    var closed = this.status === "closed";
    if (closed) { this.markClosed(); }
    else if (this.phase === "queued" || this.phase === "chatting") { this.phaseFromStatus(); }
    var r = st.receipt;
    var receipt = closed && isObject(r) && typeof r.reference === "string" && r.reference ?
      { reference: r.reference, secret: str(r.secret) } : null;
    return { status: this.status, closed: closed, receipt: receipt };
  };

  Session.prototype.onTopics = function (timeoutErr, ack) {
    this.topics = !timeoutErr && isObject(ack) && ack.ok === true ? normalizeTopics(ack.topics) : null;
    return this.topics;
  };

  // The accept_notice payload: {payload} or {error: "topic_missing"} (topics are offered and none chosen).
  Session.prototype.acceptRequest = function (topicId) {
    if (!this.notice) { return { error: "no_notice" }; }
    var payload = { notice_id: this.notice.notice_id };
    if (this.topics && this.topics.length) {
      if (topicId == null || topicId === "" || (typeof topicId === "number" && isNaN(topicId))) { return { error: "topic_missing" }; }
      payload.topic_id = topicId;
    }
    this.phase = "accepting";
    return { payload: payload };
  };

  function ackError(timeoutErr, ack) {
    if (timeoutErr || !isObject(ack)) { return { code: "server_error" }; }
    return isObject(ack.error) ? refusalOf(ack.error) : { code: "server_error" };
  }

  // accept_notice's ack: {ok: true} (the chat is open: queued, or already further) or {ok: false, error}.
  Session.prototype.onAcceptAck = function (timeoutErr, ack) {
    if (timeoutErr || !isObject(ack) || ack.ok !== true) {
      this.phase = "notice";
      return { ok: false, error: ackError(timeoutErr, ack) };
    }
    this.setToken(ack.resume_token);
    if (!this.status) { this.status = "queued"; }
    if (this.position == null) { this.position = finite(ack.position); }
    if (ack.estimated_wait_s !== undefined) { this.wait = finite(ack.estimated_wait_s); }
    this.phaseFromStatus();
    return { ok: true, status: this.status };
  };

  // What the resident typed: {entry} (in the outbox now) or {error: {code: "empty"|"too_long"}}.
  Session.prototype.compose = function (text) {
    text = typeof text === "string" ? text : "";
    if (!text.trim()) { return { error: { code: "empty" } }; }
    if (text.length > this.maxLength) { return { error: { code: "too_long" } }; }
    return { entry: this.outbox.add(text) };
  };

  // Send an outbox entry; a timed-out send goes again with the same client_msg_id while the socket is
  // connected (and from flush() after a reconnect). onResult(entry, result) with result = onSendAck's.
  Session.prototype.send = function (socket, entry, onResult) {
    var self = this;
    if (!socket || !socket.connected || !this.outbox.has(entry)) { return false; }
    socket.timeout(this.sendTimeoutMs).emit("send", { text: entry.text, client_msg_id: entry.id }, function (timeoutErr, ack) {
      if (timeoutErr) {
        if (socket.connected && self.outbox.has(entry)) { self.send(socket, entry, onResult); }
        return;
      }
      var result = self.onSendAck(entry, ack);
      if (result && onResult) { onResult(entry, result); }
    });
    return true;
  };

  // Every unacknowledged entry again, oldest first, each with its own id.
  Session.prototype.flush = function (socket, onResult) {
    var self = this;
    this.outbox.list().forEach(function (entry) { self.send(socket, entry, onResult); });
  };

  // send's ack: null when the entry was settled already (a duplicate ack); else
  // {ok: true, seq} or {ok: false, error, retry (offer "send again"), close, disable, resumeInvalid}.
  Session.prototype.onSendAck = function (entry, ack) {
    if (!this.outbox.settle(entry)) { return null; }
    if (isObject(ack) && ack.ok === true) { return { ok: true, seq: finite(ack.seq) }; }
    var err = ackError(null, ack);
    var result = { ok: false, error: err, retry: err.code === "rate_limited" || err.code === "server_error",
                   close: err.code === "closed", disable: err.code === "offline", resumeInvalid: err.code === "resume_invalid" };
    if (result.resumeInvalid) { this.dropChat(); }
    return result;
  };

  // "Send again" after a refusal: a new entry (the refused one was never stored).
  Session.prototype.retry = function (text) { return this.outbox.add(String(text)); };

  // end's ack: {closed: true} or {closed: false, error}.
  Session.prototype.onEndAck = function (timeoutErr, ack) {
    if (!timeoutErr && isObject(ack) && ack.ok === true) { return { closed: true }; }
    var err = ackError(timeoutErr, ack);
    return err.code === "closed" ? { closed: true } : { closed: false, error: err };
  };

  // The chat ended: its token is forgotten for resuming but kept as closedToken (the desk still
  // fetches the chat's copy with it) until the caller clears it.
  Session.prototype.markClosed = function () {
    var t = this.token();
    if (t) { this.closedToken = t; }
    this.status = "closed";
    this.phase = "closed";
    this.dropChat();
  };

  Session.prototype.decline = function () {
    this.dropChat();
    this.phase = "left";
  };

  Session.prototype.failed = function () { this.phase = "failed"; };

  // A refused or failed connection: {kind: "resume_invalid"|"retrying"|"offline"|"refused", code, hours}.
  Session.prototype.onConnectError = function (err, active) {
    var data = isObject(err) && isObject(err.data) ? err.data : null;
    var code = data && typeof data.code === "string" ? data.code : null;
    if (code === "resume_invalid") { this.dropChat(); this.reset(); return { kind: "resume_invalid", code: code }; }
    if (active) { return { kind: "retrying", code: code }; }
    if (code === "offline") {
      this.phase = "offline";
      return { kind: "offline", code: code, hours: normalizeHours(data.hours) };
    }
    this.phase = "failed";
    return { kind: "refused", code: code ? errorCode(data) : null };
  };

  return {
    ERROR_CODES: ERROR_CODES,
    ERROR_REASONS: ERROR_REASONS,
    DEFAULT_MAX_LENGTH: DEFAULT_MAX_LENGTH,
    SEND_TIMEOUT_MS: SEND_TIMEOUT_MS,
    TYPING_IDLE_MS: TYPING_IDLE_MS,
    REMOTE_TYPING_MAX_MS: REMOTE_TYPING_MAX_MS,
    LANGS: LANGS,
    pickLang: pickLang,
    errorCode: errorCode,
    errorReason: errorReason,
    errorText: errorText,
    systemText: systemText,
    parseTime: parseTime,
    maxLengthFrom: maxLengthFrom,
    normalizeMessage: normalizeMessage,
    normalizeNotice: normalizeNotice,
    normalizeOffline: normalizeOffline,
    normalizeTopics: normalizeTopics,
    newClientMsgId: newClientMsgId,
    memoryStorage: memoryStorage,
    webStorage: webStorage,
    Outbox: Outbox,
    Session: Session
  };
}));
