/* CIM resident chat widget: one <script> tag builds a launcher and a chat panel speaking /resident.
 *
 * Embed:  <script src="https://SERVER/widget/cim-widget.js" data-lang="pl" defer></script>
 * Options (data-* attributes on that script tag):
 *   data-lang    "pl" (default) or "en" -- the language of the widget's own strings
 *   data-server  override the chat server URL (default: the origin the script was loaded from)
 *
 * This file is the DOM part. The session (protocol, outbox, state) is cim-widget-core.js next to it,
 * loaded from the same folder before anything is drawn; the node tests in webchat/tests/ cover it.
 *
 * Security rule: every text that comes from a resident, a consultant or the server is put into
 * the page with textContent only. Nothing here ever assigns innerHTML.
 */
(function () {
  "use strict";

  if (window.__cimWidget) { return; }  // embedded twice: keep the first one

  var script = document.currentScript ||
    document.querySelector('script[src*="cim-widget.js"]');
  if (!script) { return; }

  var scriptUrl = new URL(script.getAttribute("src"), document.baseURI);
  var assetBase = new URL(".", scriptUrl).href;        // .../widget/
  var impl = null;

  window.__cimWidget = {
    version: "1",
    open: function () { if (impl) { impl.open(true); } },
    close: function () { if (impl) { impl.close(); } },
    get socket() { return impl ? impl.socket() : null; },
    get session() { return impl ? impl.session : null; }
  };

  // The core from our own server, then the widget (the core is a plain script setting window.CIMWidgetCore).
  function loadCore(done) {
    if (window.CIMWidgetCore && window.CIMWidgetCore.Session) { done(window.CIMWidgetCore); return; }
    var s = document.createElement("script");
    s.src = assetBase + "cim-widget-core.js";
    s.async = true;
    s.onload = function () {
      if (window.CIMWidgetCore && window.CIMWidgetCore.Session) { done(window.CIMWidgetCore); }
    };
    s.onerror = function () {
      if (window.console) { window.console.error("cim-widget: " + s.src + " could not be loaded"); }
    };
    (document.head || document.documentElement).appendChild(s);
  }

  loadCore(function (Core) { impl = start(Core); });

  function start(Core) {
    var lang = Core.pickLang(script.getAttribute("data-lang"));
    var serverAttr = script.getAttribute("data-server");
    var serverUrl = new URL(serverAttr || scriptUrl.origin, document.baseURI);
    var serverOrigin = serverUrl.origin;
    // A server mounted under a path prefix (behind a reverse proxy) keeps Socket.IO under it too.
    var socketPath = serverUrl.pathname.replace(/\/+$/, "") + "/socket.io/";

    var SEND_TIMEOUT_MS = Core.SEND_TIMEOUT_MS;
    var TYPING_IDLE_MS = Core.TYPING_IDLE_MS;
    var REMOTE_TYPING_MAX_MS = Core.REMOTE_TYPING_MAX_MS;
    var STORE_KEY = "cim-widget:" + serverOrigin + ":";
    // sessionStorage itself may throw (storage disabled): reached inside the core's try blocks only.
    var storage = Core.webStorage({
      getItem: function (k) { return window.sessionStorage.getItem(k); },
      setItem: function (k, v) { window.sessionStorage.setItem(k, v); },
      removeItem: function (k) { window.sessionStorage.removeItem(k); }
    }, STORE_KEY);
    // The message length limit is the server's (session.maxLength, from notice/offline/history).
    var session = new Core.Session({ lang: lang, storage: storage });

    var STRINGS = {
      pl: {
        launcher: "Czat z urzędem",
        title: "Czat z Centrum Informacji Mieszkańców",
        close: "Zamknij okno czatu",
        connecting: "Łączenie z serwerem…",
        noticeHeading: "Informacja o przetwarzaniu danych osobowych",
        noticeIntro: "Zanim rozpoczniesz czat, zapoznaj się z poniższą informacją.",
        accept: "Akceptuję i rozpoczynam",
        leave: "Opuść",
        leftHeading: "Czat nie został rozpoczęty",
        leftText: "Nie rozpoczęto rozmowy i nie zapisano żadnych danych.",
        startAgain: "Rozpocznij od nowa",
        offlineHeading: "Czat jest teraz nieczynny",
        hours: "Godziny pracy czatu:",
        tryAgain: "Spróbuj ponownie",
        phone: "Telefon:",
        address: "Adres:",
        endQuestion: "Czy na pewno zakończyć czat? Nie będzie można do niego wrócić.",
        endConfirm: "Tak, zakończ",
        endCancel: "Nie, wróć do rozmowy",
        transcriptLabel: "Przebieg rozmowy",
        messageLabel: "Twoja wiadomość",
        messageHint: "Enter wysyła, Shift+Enter wstawia nową linię.",
        send: "Wyślij",
        end: "Zakończ czat",
        counter: function (n, max) { return n + " / " + max + " znaków"; },
        you: "Ty",
        consultant: "Konsultant",
        system: "Informacja",
        pending: "Wysyłanie…",
        sent: "Wysłano",
        failed: "Nie wysłano",
        retry: "Wyślij ponownie",
        unread: "Nowe wiadomości",
        queued: function (p) {
          return p ? "Czekasz w kolejce. Twoja pozycja: " + p + "." : "Czekasz w kolejce na konsultanta.";
        },
        wait: function (sec) {
          return sec == null ? "Szacowany czas oczekiwania: nieznany."
            : "Szacowany czas oczekiwania: ok. " + Math.max(1, Math.round(sec / 60)) + " min.";
        },
        topicLegend: "Czego dotyczy Twoja sprawa?",
        topicMissing: "Wybierz temat rozmowy.",
        active: "Połączono z konsultantem.",
        closed: "Czat zakończony.",
        newChat: "Rozpocznij nowy czat",
        typing: "Konsultant pisze…",
        reconnecting: "Utracono połączenie. Trwa ponowne łączenie…",
        reconnected: "Połączenie przywrócone.",
        connectFailed: "Nie udało się połączyć z serwerem czatu.",
        // System lines by event code: the server's SYSTEM_EVENTS (store.chats), kept the same by a test.
        events: {
          notice_accepted: "Zaakceptowano informację o przetwarzaniu danych osobowych (wersja {version}).",
          queued: "Rozmowa czeka w kolejce na konsultanta.",
          accepted: "Połączono z konsultantem. Odpowiada: {consultant}.",
          transferred: "Rozmowa została przekazana. Odpowiada teraz: {consultant}.",
          taken_over: "Rozmowę kontynuuje inna osoba z zespołu konsultantów. Odpowiada teraz: {consultant}.",
          requeued: "Osoba konsultująca jest teraz niedostępna; rozmowa wraca do kolejki.",
          closed_by_consultant: "Czat zakończony przez konsultanta.",
          ended_by_resident: "Czat zakończony.",
          declined: "Rozmowa zostanie przekazana innemu konsultantowi.",
          idle_warning: "Czy nadal tu jesteś? Jeśli nic nie napiszesz, czat zostanie wkrótce zakończony.",
          closed_idle: "Czat zakończony z powodu braku odpowiedzi.",
          queue_timeout: "Wszyscy konsultanci są teraz zajęci, więc czat został zakończony. Możesz zostawić wiadomość."
        },
        eventsUnnamed: {
          accepted: "Połączono z konsultantem.",
          transferred: "Rozmowa została przekazana innemu konsultantowi.",
          taken_over: "Rozmowę kontynuuje inna osoba z zespołu konsultantów."
        },
        // Refusals by reason (the server's RESIDENT_REASONS, docs/PROTOCOL.md): shown instead of the code's text.
        reasons: {
          contact_missing: "Podaj adres e-mail lub numer telefonu, na który mamy odpowiedzieć.",
          contact_invalid: "To nie jest adres e-mail (nazwa@domena) ani numer telefonu. Popraw kontakt.",
          contact_too_long: "Kontakt może mieć najwyżej 200 znaków.",
          name_too_long: "Imię i nazwisko może mieć najwyżej 200 znaków.",
          consultant_available: "Konsultant jest już dostępny. Rozpocznij od nowa, aby porozmawiać na czacie.",
          chat_open: "Czat jest już otwarty w tym oknie. Zakończ go, zanim rozpoczniesz kolejny.",
          notice_outdated: "Informacja o przetwarzaniu danych osobowych została zmieniona. Rozpocznij od nowa, aby przeczytać aktualną.",
          not_ended: "To będzie możliwe po zakończeniu czatu.",
          already_rated: "Ta rozmowa została już oceniona.",
          rating_invalid: "Wybierz ocenę od 1 do 5.",
          comment_too_long: "Komentarz może mieć najwyżej 1000 znaków."
        },
        errors: {
          empty: "Wiadomość jest pusta. Wpisz treść przed wysłaniem.",
          too_long: "Wiadomość jest za długa. Limit to {max} znaków.",
          rate_limited: "Wysyłasz wiadomości zbyt szybko. Odczekaj chwilę i spróbuj ponownie.",
          closed: "Ten czat został już zakończony. Nie można wysłać wiadomości.",
          offline: "Czat jest teraz nieczynny. Spróbuj w godzinach pracy.",
          notice_not_accepted: "Najpierw zaakceptuj informację o przetwarzaniu danych osobowych.",
          invalid: "Serwer odrzucił nieprawidłowe żądanie. Odśwież stronę i spróbuj ponownie.",
          server_error: "Wystąpił błąd serwera. Spróbuj ponownie za chwilę.",
          resume_invalid: "Nie można wznowić poprzedniej rozmowy. Rozpoczynamy od nowa.",
          too_many_connections: "Z Twojej sieci otwarto zbyt wiele połączeń z czatem. Zamknij inne karty z czatem i spróbuj ponownie.",
          unknown: "Wystąpił nieoczekiwany błąd. Spróbuj ponownie."
        }
      },
      en: {
        launcher: "Chat with us",
        title: "Chat with the Resident Information Centre",
        close: "Close the chat window",
        connecting: "Connecting to the server…",
        noticeHeading: "Personal data notice",
        noticeIntro: "Before you start the chat, please read the following notice.",
        accept: "Accept and start",
        leave: "Leave",
        leftHeading: "You have left the chat",
        leftText: "No conversation was started and no data was stored.",
        startAgain: "Start again",
        offlineHeading: "The chat is closed right now",
        hours: "Chat opening hours:",
        tryAgain: "Try again",
        phone: "Phone:",
        address: "Address:",
        endQuestion: "Do you really want to end the chat? You will not be able to return to it.",
        endConfirm: "Yes, end it",
        endCancel: "No, go back to the chat",
        transcriptLabel: "Conversation",
        messageLabel: "Your message",
        messageHint: "Enter sends, Shift+Enter inserts a new line.",
        send: "Send",
        end: "End chat",
        counter: function (n, max) { return n + " / " + max + " characters"; },
        you: "You",
        consultant: "Consultant",
        system: "Information",
        pending: "Sending…",
        sent: "Sent",
        failed: "Not sent",
        retry: "Send again",
        unread: "New messages",
        queued: function (p) {
          return p ? "You are in the queue. Your position: " + p + "." : "You are waiting for a consultant.";
        },
        wait: function (sec) {
          return sec == null ? "Estimated wait: unknown."
            : "Estimated wait: about " + Math.max(1, Math.round(sec / 60)) + " min.";
        },
        topicLegend: "What is your question about?",
        topicMissing: "Please choose a topic.",
        active: "You are connected with a consultant.",
        closed: "The chat has ended.",
        newChat: "Start a new chat",
        typing: "The consultant is typing…",
        reconnecting: "Connection lost. Reconnecting…",
        reconnected: "Connection restored.",
        connectFailed: "Could not connect to the chat server.",
        events: {
          notice_accepted: "You accepted the personal data notice (version {version}).",
          queued: "The chat is waiting in the queue for a consultant.",
          accepted: "You are now connected with a consultant. Answering: {consultant}.",
          transferred: "The chat was handed over. Now answering: {consultant}.",
          taken_over: "The conversation continues with another consultant. Now answering: {consultant}.",
          requeued: "The consultant is not available now; the chat goes back to the queue.",
          closed_by_consultant: "The consultant ended the chat.",
          ended_by_resident: "You ended the chat.",
          declined: "The chat is being passed to another consultant.",
          idle_warning: "Are you still there? If you write nothing, the chat will end soon.",
          closed_idle: "The chat ended because there was no reply.",
          queue_timeout: "All consultants are busy now, so the chat has ended. You can leave a message."
        },
        eventsUnnamed: {
          accepted: "You are now connected with a consultant.",
          transferred: "The chat was handed over to another consultant.",
          taken_over: "The conversation continues with another consultant."
        },
        reasons: {
          contact_missing: "Give the e-mail address or phone number we should reply to.",
          contact_invalid: "This is neither an e-mail address (name@domain) nor a phone number. Please correct it.",
          contact_too_long: "The contact may have at most 200 characters.",
          name_too_long: "The name may have at most 200 characters.",
          consultant_available: "A consultant is available now. Start again to chat with them.",
          chat_open: "A chat is already open in this window. End it before starting another.",
          notice_outdated: "The personal data notice has changed. Start again to read the current one.",
          not_ended: "This is possible once the chat has ended.",
          already_rated: "This chat has already been rated.",
          rating_invalid: "Choose a rating from 1 to 5.",
          comment_too_long: "The comment may have at most 1,000 characters."
        },
        errors: {
          empty: "The message is empty. Type something before sending.",
          too_long: "The message is too long. The limit is {max} characters.",
          rate_limited: "You are sending messages too quickly. Please wait a moment and try again.",
          closed: "This chat has already ended. The message cannot be sent.",
          offline: "The chat is closed right now. Please try again during opening hours.",
          notice_not_accepted: "Please accept the personal data notice first.",
          invalid: "The server rejected an invalid request. Reload the page and try again.",
          server_error: "A server error occurred. Please try again in a moment.",
          resume_invalid: "The previous conversation cannot be resumed. Starting over.",
          too_many_connections: "Too many chat connections are open from your network. Close other chat tabs and try again.",
          unknown: "An unexpected error occurred. Please try again."
        }
      }
    };
    var T = STRINGS[lang];

    /* ---------- small helpers ---------- */

    function el(tag, attrs, text) {
      var node = document.createElement(tag);
      if (attrs) {
        Object.keys(attrs).forEach(function (k) {
          if (attrs[k] === false || attrs[k] == null) { return; }
          if (k === "className") { node.className = attrs[k]; } else { node.setAttribute(k, attrs[k] === true ? "" : attrs[k]); }
        });
      }
      if (text != null) { node.textContent = String(text); }
      return node;
    }

    // The desk's own keys ("open", "copy") in the same storage as the session's token and outbox.
    function store(key, value) { storage.set(key, value); }
    function load(key) { return storage.get(key); }

    function formatTime(d) {
      return d.toLocaleTimeString(lang === "pl" ? "pl-PL" : "en-GB", { hour: "2-digit", minute: "2-digit" });
    }

    function systemText(m) { return Core.systemText(m, T); }
    // Every refusal in the widget's own words (by code and reason), never the server's message.
    function errorText(err) { return Core.errorText(err, T.errors, session.maxLength, T.reasons); }

    /* ---------- assets: stylesheet and the Socket.IO client, both from our own server ---------- */

    function injectStylesheet() {
      var href = assetBase + "cim-widget.css";
      if (document.querySelector('link[href="' + href + '"]')) { return; }
      document.head.appendChild(el("link", { rel: "stylesheet", href: href }));
    }

    var ioReady = null;
    function loadSocketIo() {
      if (ioReady) { return ioReady; }
      ioReady = new Promise(function (resolve, reject) {
        if (typeof window.io === "function") { resolve(window.io); return; }
        var s = el("script", { src: assetBase + "vendor/socket.io.min.js", async: true });
        s.onload = function () { typeof window.io === "function" ? resolve(window.io) : reject(new Error("io missing")); };
        s.onerror = function () { ioReady = null; reject(new Error("socket.io client failed to load")); };
        document.head.appendChild(s);
      });
      return ioReady;
    }

    /* ---------- DOM skeleton ---------- */

    var root = el("div", { className: "cim-w", "data-cim-widget": "" });
    var launcher = el("button", {
      type: "button", className: "cim-launcher", "aria-expanded": "false", "aria-controls": "cim-panel"
    });
    launcher.innerHTML =  /* static markup only, no data */
      '<svg class="cim-launcher__icon" aria-hidden="true" focusable="false" viewBox="0 0 24 24" width="24" height="24">' +
      '<path fill="currentColor" d="M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2zm1 4v2h14V7H5zm0 4v2h10v-2H5z"/></svg>';
    var launcherLabel = el("span", { className: "cim-launcher__label" }, T.launcher);
    var badge = el("span", { className: "cim-launcher__badge", hidden: true });
    launcher.appendChild(launcherLabel);
    launcher.appendChild(badge);

    var panel = el("section", {
      id: "cim-panel", className: "cim-panel", role: "dialog", "aria-labelledby": "cim-title",
      lang: lang, hidden: true
    });
    var header = el("div", { className: "cim-panel__header" });
    var title = el("h2", { id: "cim-title", className: "cim-panel__title" }, T.title);
    var closeBtn = el("button", { type: "button", className: "cim-iconbtn cim-close", "aria-label": T.close });
    closeBtn.innerHTML =
      '<svg aria-hidden="true" focusable="false" viewBox="0 0 24 24" width="20" height="20">' +
      '<path fill="currentColor" d="M18.3 5.7 12 12l6.3 6.3-1.4 1.4L10.6 13.4 4.3 19.7 2.9 18.3 9.2 12 2.9 5.7 4.3 4.3l6.3 6.3 6.3-6.3z"/></svg>';
    header.appendChild(title);
    header.appendChild(closeBtn);

    // Queue and connection state: one polite status region (WCAG 4.1.3).
    var statusBar = el("div", { className: "cim-status", role: "status", "aria-live": "polite", "aria-atomic": "true" });
    var body = el("div", { className: "cim-panel__body" });
    panel.appendChild(header);
    panel.appendChild(statusBar);
    panel.appendChild(body);
    root.appendChild(panel);
    root.appendChild(launcher);

    /* ---------- state ---------- */

    // The chat's state (status, queue position and wait, notice, topics, outbox, limit) is the session's.
    var socket = null;
    var view = "idle";            // idle | connecting | notice | offline | chat | closed | left | failed
    var bySeq = {};               // seq -> message element (dedupes history vs live events)
    var outboxEls = {};           // client_msg_id -> element
    var chat = null;              // chat-view elements
    var disconnectedShown = false;
    var typingTimer = null, typingActive = false, remoteTypingTimer = null;
    var intentionalDisconnect = false;
    var unread = 0;
    var statusNote = "";          // a note for the status line outside a chat (e.g. "cannot resume")
    var early = [];               // messages that arrive between accept_notice and its ack

    function token() { return session.token(); }

    function setStatus(text, kind) {
      statusBar.textContent = text || "";
      statusBar.className = "cim-status" + (kind ? " cim-status--" + kind : "");
    }

    function chatStatusText() {
      if (session.status === "queued") { return T.queued(session.position) + " " + T.wait(session.wait); }
      if (session.status === "active") { return T.active; }
      if (session.status === "closed") { return T.closed; }
      return "";
    }

    function refreshStatus() {
      if (socket && !socket.connected && disconnectedShown) { setStatus(T.reconnecting, "warn"); return; }
      setStatus(view === "chat" ? chatStatusText() : statusNote, view === "chat" || !statusNote ? null : "warn");
    }

    function clearBody() {
      while (body.firstChild) { body.removeChild(body.firstChild); }
      chat = null;
    }

    function focusFirst() {
      var target = body.querySelector("[data-cim-autofocus]") || body.querySelector("button, textarea") || closeBtn;
      target.focus();
    }

    /* ---------- views ---------- */

    function showConnecting() {
      view = "connecting";
      panel.setAttribute("data-view", view);
      clearBody();
      body.appendChild(el("p", { className: "cim-muted", "data-cim-autofocus": "", tabindex: "-1" }, T.connecting));
      refreshStatus();
    }

    // payload: the session's normalised notice (Core.normalizeNotice).
    function showNotice(payload) {
      view = "notice";
      panel.setAttribute("data-view", view);
      early = [];
      clearBody();
      var box = el("div", { className: "cim-notice" });
      var h = el("h3", { className: "cim-notice__heading", id: "cim-notice-heading", tabindex: "-1", "data-cim-autofocus": "" }, T.noticeHeading);
      var intro = el("p", { className: "cim-muted" }, T.noticeIntro);
      var text = el("div", { className: "cim-notice__text", "data-cim-notice": "" });
      if (payload.lang) { text.setAttribute("lang", payload.lang); }
      payload.text.split(/\n{2,}/).forEach(function (para) {
        text.appendChild(el("p", null, para));
      });
      var actions = el("div", { className: "cim-actions" });
      var accept = el("button", { type: "button", className: "cim-btn cim-btn--primary", "data-cim-accept": "" }, T.accept);
      var leave = el("button", { type: "button", className: "cim-btn cim-btn--secondary", "data-cim-leave": "" }, T.leave);
      var err = el("p", { className: "cim-error", role: "alert" });
      accept.addEventListener("click", function () { acceptNotice(accept, leave, err); });
      leave.addEventListener("click", declineNotice);
      actions.appendChild(accept);
      actions.appendChild(leave);
      var picker = el("fieldset", { className: "cim-topics", "data-cim-topics": "" });
      picker.hidden = true;
      box.appendChild(h);
      box.appendChild(intro);
      box.appendChild(text);
      box.appendChild(picker);
      box.appendChild(err);
      loadTopics(picker);
      box.appendChild(actions);
      box.setAttribute("aria-labelledby", "cim-notice-heading");
      box.setAttribute("role", "region");
      if (payload.consultants_available === false) { deskOfflineOffer(box, payload); }
      deskLastCopy(box);
      body.appendChild(box);
      refreshStatus();
      if (isOpen()) { h.focus(); }
    }

    function loadTopics(picker) {
      session.topics = null;
      if (!socket || !socket.connected) { return; }
      socket.timeout(SEND_TIMEOUT_MS).emit("topics", {}, function (timeoutErr, ack) {
        var topics = session.onTopics(timeoutErr, ack);
        if (!topics) { return; }
        while (picker.firstChild) { picker.removeChild(picker.firstChild); }
        picker.appendChild(el("legend", null, T.topicLegend));
        topics.forEach(function (t) {
          var label = el("label", { className: "cim-topics__item" });
          var radio = el("input", { type: "radio", name: "cim-topic", value: String(t.id), "data-cim-topic": String(t.id) });
          label.appendChild(radio);
          label.appendChild(el("span", null, t.label));
          picker.appendChild(label);
        });
        picker.hidden = false;
      });
    }

    function chosenTopic() {
      var checked = body.querySelector("input[name=cim-topic]:checked");
      return checked ? Number(checked.value) : null;
    }

    function renderHours(hours, into) {
      if (hours == null || hours === "") { return; }
      into.appendChild(el("p", { className: "cim-offline__hours-label" }, T.hours));
      if (typeof hours === "string") { into.appendChild(el("p", { className: "cim-offline__hours" }, hours)); return; }
      var list = el("ul", { className: "cim-offline__hours" });
      if (Array.isArray(hours)) {
        hours.forEach(function (h) {
          list.appendChild(el("li", null, typeof h === "object" && h ? Object.keys(h).map(function (k) { return h[k]; }).join(" ") : h));
        });
      } else if (typeof hours === "object") {
        Object.keys(hours).forEach(function (k) {
          var v = hours[k];
          list.appendChild(el("li", null, k + ": " + (Array.isArray(v) ? v.join(", ") : v)));
        });
      }
      into.appendChild(list);
    }

    // payload: the session's normalised offline payload (Core.normalizeOffline).
    function showOffline(payload) {
      view = "offline";
      panel.setAttribute("data-view", view);
      clearBody();
      var box = el("div", { className: "cim-offline", "data-cim-offline": "" });
      box.appendChild(el("h3", { tabindex: "-1", "data-cim-autofocus": "" }, T.offlineHeading));
      // Without the hours the widget's own sentence says when to come back (never the server's words).
      if (payload.hours == null) { box.appendChild(el("p", null, T.errors.offline)); }
      renderHours(payload.hours, box);
      [["phone", T.phone], ["address", T.address]].forEach(function (f) {
        var v = payload[f[0]];
        if (typeof v !== "string" || !v) { return; }
        var p = el("p", { className: "cim-offline__contact", "data-cim-office": f[0] });
        p.appendChild(el("span", { className: "cim-offline__label" }, f[1] + " "));
        p.appendChild(f[0] === "phone" ? el("a", { href: "tel:" + v.replace(/[^0-9+]/g, "") }, v) : el("span", null, v));
        box.appendChild(p);
      });
      deskOfflineOffer(box, payload.notice);
      deskLastCopy(box);
      body.appendChild(box);
      refreshStatus();
      if (isOpen()) { focusFirst(); }
    }

    function showLeft() {
      view = "left";
      panel.setAttribute("data-view", view);
      clearBody();
      var box = el("div", { className: "cim-ended", "data-cim-left": "" });
      box.appendChild(el("h3", { tabindex: "-1", "data-cim-autofocus": "" }, T.leftHeading));
      box.appendChild(el("p", null, T.leftText));
      var again = el("button", { type: "button", className: "cim-btn cim-btn--secondary" }, T.startAgain);
      again.addEventListener("click", restart);
      box.appendChild(again);
      body.appendChild(box);
      setStatus("", null);
      if (isOpen()) { focusFirst(); }
    }

    function showFailed(message) {
      view = "failed";
      panel.setAttribute("data-view", view);
      clearBody();
      var box = el("div", { className: "cim-ended" });
      box.appendChild(el("p", { className: "cim-error", role: "alert", tabindex: "-1", "data-cim-autofocus": "" }, message));
      var again = el("button", { type: "button", className: "cim-btn cim-btn--secondary" }, T.tryAgain);
      again.addEventListener("click", restart);
      box.appendChild(again);
      body.appendChild(box);
      setStatus("", null);
      if (isOpen()) { focusFirst(); }
    }

    function buildChatView() {
      statusNote = "";
      view = "chat";
      panel.setAttribute("data-view", view);
      clearBody();
      bySeq = {};
      outboxEls = {};
      var log = el("div", {
        className: "cim-log", role: "log", "aria-live": "polite", "aria-relevant": "additions",
        "aria-label": T.transcriptLabel, tabindex: "0", "data-cim-log": ""
      });
      var typing = el("p", { className: "cim-typing", "aria-live": "polite", "data-cim-typing": "" });
      var error = el("p", { className: "cim-error", role: "alert", "data-cim-error": "" });
      var form = el("form", { className: "cim-composer", novalidate: true });
      var label = el("label", { "for": "cim-input", className: "cim-composer__label" }, T.messageLabel);
      var hint = el("span", { id: "cim-input-hint", className: "cim-visually-hidden" }, T.messageHint);
      var input = el("textarea", {
        id: "cim-input", className: "cim-composer__input", rows: "3", maxlength: String(session.maxLength),
        "aria-describedby": "cim-input-hint cim-counter", "data-cim-autofocus": ""
      });
      var counter = el("span", { id: "cim-counter", className: "cim-composer__counter" }, T.counter(0, session.maxLength));
      var row = el("div", { className: "cim-composer__row" });
      var endBtn = el("button", { type: "button", className: "cim-btn cim-btn--secondary", "data-cim-end": "" }, T.end);
      var sendBtn = el("button", { type: "submit", className: "cim-btn cim-btn--primary", "data-cim-send": "" }, T.send);
      row.appendChild(counter);
      row.appendChild(endBtn);
      row.appendChild(sendBtn);
      form.appendChild(label);
      form.appendChild(hint);
      form.appendChild(input);
      form.appendChild(row);

      input.addEventListener("keydown", function (e) {
        if (e.key === "Enter" && !e.shiftKey && !e.isComposing && !e.altKey && !e.ctrlKey && !e.metaKey) {
          e.preventDefault();
          submit();
        }
      });
      input.addEventListener("input", function () {
        updateCounter();
        localTyping(input.value.length > 0);
      });
      form.addEventListener("submit", function (e) { e.preventDefault(); submit(); });
      endBtn.addEventListener("click", askEnd);

      body.appendChild(log);
      body.appendChild(typing);
      body.appendChild(error);
      body.appendChild(form);
      chat = { log: log, typing: typing, error: error, input: input, counter: counter, send: sendBtn, end: endBtn, form: form,
               pinned: true, autoTop: 0 };
      // Keep the newest message in view while the log is at the bottom, also when the typing line,
      // the message box or the viewport change its size.
      log.addEventListener("scroll", function () {
        if (!chat || Math.abs(log.scrollTop - chat.autoTop) < 2) { return; }  // our own scrolling
        chat.pinned = log.scrollHeight - log.scrollTop - log.clientHeight < 24;
      });
      if (window.ResizeObserver) {
        new ResizeObserver(function () { if (chat && chat.log === log && chat.pinned) { scrollLog(); } }).observe(log);
      }
      updateCounter();
    }

    function updateCounter() {
      if (!chat) { return; }
      var n = chat.input.value.length;
      chat.input.setAttribute("maxlength", String(session.maxLength));
      chat.counter.textContent = T.counter(n, session.maxLength);
      chat.counter.classList.toggle("cim-composer__counter--limit", n >= session.maxLength);
    }

    function showChatError(err) {
      if (chat) { chat.error.textContent = err ? errorText(err) : ""; }
    }

    function setComposerEnabled(enabled) {
      if (!chat) { return; }
      chat.input.disabled = !enabled;
      chat.send.disabled = !enabled;
      chat.end.disabled = !enabled;
    }

    /* ---------- transcript ---------- */

    function messageEl(from, text, at) {
      var kind = from === "resident" ? "resident" : from === "consultant" ? "consultant" : "system";
      var who = kind === "resident" ? T.you : kind === "consultant" ? T.consultant : T.system;
      var item = el("div", { className: "cim-msg cim-msg--" + kind, "data-from": kind });
      var meta = el("p", { className: "cim-msg__meta" });
      meta.appendChild(el("span", { className: "cim-msg__who" }, who));
      var time = el("time", { className: "cim-msg__time" });
      meta.appendChild(time);
      setMessageTime(time, at);
      var textP = el("p", { className: "cim-msg__text", "data-cim-text": "" });
      textP.textContent = String(text == null ? "" : text);  // text only, never markup
      item.appendChild(meta);
      item.appendChild(textP);
      return item;
    }

    function setMessageTime(time, at) {
      var d = Core.parseTime(at) || (at === undefined ? null : new Date());
      if (!d) { time.textContent = ""; return; }
      time.setAttribute("datetime", d.toISOString());
      time.textContent = formatTime(d);
    }

    function setDelivery(item, state, extra) {
      var s = item.querySelector(".cim-msg__state");
      if (!s) { s = el("p", { className: "cim-msg__state" }); item.appendChild(s); }
      while (s.firstChild) { s.removeChild(s.firstChild); }
      item.setAttribute("data-state", state);
      if (state === "sent") { s.parentNode.removeChild(s); return; }
      s.className = "cim-msg__state";
      s.appendChild(document.createTextNode(state === "pending" ? T.pending : T.failed + (extra ? ": " + extra : "")));
    }

    function scrollLog() {
      if (!chat) { return; }
      chat.log.scrollTop = chat.log.scrollHeight;
      chat.autoTop = chat.log.scrollTop;
      chat.pinned = true;
    }

    // m: a normalised message (Core.normalizeMessage).
    function addServerMessage(m) {
      if (!m) { return; }
      if (!chat) { early.push(m); return; }
      if (m.seq != null && bySeq[m.seq]) {
        // Already drawn (our own message, acknowledged first): take the server's time for it.
        if (m.at) { setMessageTime(bySeq[m.seq].querySelector("time"), m.at); }
        return;
      }
      if (m.from === "resident") {
        // Our own message echoed back: attach it to the pending bubble with the same text, if any.
        var pending = session.outbox.list();
        for (var i = 0; i < pending.length; i++) {
          var pend = outboxEls[pending[i].id];
          if (pend && pending[i].text === m.text && !pend.hasAttribute("data-seq")) {
            claimSeq(pend, m.seq, m.at);
            return;
          }
        }
      }
      var item = messageEl(m.from, m.from === "system" ? systemText(m) : m.text, m.at);
      if (m.event) { item.setAttribute("data-event", m.event); }
      if (m.from === "resident") { item.setAttribute("data-state", "sent"); }
      if (m.seq != null) { item.setAttribute("data-seq", m.seq); bySeq[m.seq] = item; }
      insertBySeq(item, m.seq);
      if (m.from === "consultant") {
        setRemoteTyping(false);
        if (!isOpen()) {
          unread += 1;
          badge.hidden = false;
          badge.textContent = "";
          badge.appendChild(el("span", { className: "cim-visually-hidden" }, " " + T.unread + ": "));
          badge.appendChild(document.createTextNode(String(unread)));
        }
      }
      scrollLog();
    }

    function claimSeq(item, seq, at) {
      if (seq == null) { return; }
      if (bySeq[seq] && bySeq[seq] !== item) { bySeq[seq].parentNode && bySeq[seq].parentNode.removeChild(bySeq[seq]); }
      bySeq[seq] = item;
      item.setAttribute("data-seq", seq);
      if (at) { setMessageTime(item.querySelector("time"), at); }
    }

    // Keep stored messages in seq order; pending (unsequenced) bubbles stay at the bottom.
    function insertBySeq(item, seq) {
      var log = chat.log;
      if (seq == null) { log.appendChild(item); return; }
      var children = log.children;
      for (var i = 0; i < children.length; i++) {
        var s = children[i].getAttribute("data-seq");
        if (s == null || Number(s) > Number(seq)) { log.insertBefore(item, children[i]); return; }
      }
      log.appendChild(item);
    }

    /* ---------- sending, with retry after reconnect ---------- */

    function submit() {
      if (!chat || chat.input.disabled) { return; }
      var composed = session.compose(chat.input.value);
      if (composed.error) {
        showChatError(composed.error);
        if (composed.error.code === "empty") { chat.input.focus(); }
        return;
      }
      showChatError(null);
      renderPending(composed.entry);
      chat.input.value = "";
      updateCounter();
      localTyping(false);
      emitSend(composed.entry);
    }

    function renderPending(entry) {
      var item = messageEl("resident", entry.text, new Date().toISOString());
      item.setAttribute("data-client-msg-id", entry.id);
      setDelivery(item, "pending");
      outboxEls[entry.id] = item;
      chat.log.appendChild(item);
      scrollLog();
    }

    // Not connected: sent again (same client_msg_id) from the "connect" handler.
    function emitSend(entry) { session.send(socket, entry, onSendResult); }

    function flushOutbox() { session.flush(socket, onSendResult); }

    function onSendResult(entry, result) {
      var item = outboxEls[entry.id];
      delete outboxEls[entry.id];
      if (result.ok) {
        if (!item) { return; }
        var stored = result.seq != null ? bySeq[result.seq] : null;
        if (stored && stored !== item) {
          // Stored before (the first ack was lost) and already drawn from the history: keep that one.
          if (item.parentNode) { item.parentNode.removeChild(item); }
          return;
        }
        claimSeq(item, result.seq);
        setDelivery(item, "sent");
        return;
      }
      if (result.resumeInvalid) { resumeInvalid(); return; }
      if (item) {
        setDelivery(item, "failed", errorText(result.error));
        if (result.retry) { addRetry(item, entry.text); }
      }
      showChatError(result.error);
      if (result.close) { markClosed(); }
      if (result.disable) { setComposerEnabled(false); }
    }

    function addRetry(item, text) {
      var btn = el("button", { type: "button", className: "cim-linkbtn" }, T.retry);
      btn.addEventListener("click", function () {
        if (item.parentNode) { item.parentNode.removeChild(item); }
        var entry = session.retry(text);
        renderPending(entry);
        emitSend(entry);
      });
      item.querySelector(".cim-msg__state").appendChild(btn);
    }

    /* ---------- typing ---------- */

    function localTyping(active) {
      clearTimeout(typingTimer);
      if (active) { typingTimer = setTimeout(function () { localTyping(false); }, TYPING_IDLE_MS); }
      if (active === typingActive || !socket || !socket.connected || view !== "chat" || session.status === "closed") {
        if (!active) { typingActive = false; }
        return;
      }
      typingActive = active;
      socket.emit("typing", { active: active }, function () { /* acks are not interesting here */ });
    }

    function setRemoteTyping(active) {
      if (!chat) { return; }
      clearTimeout(remoteTypingTimer);
      chat.typing.textContent = active ? T.typing : "";
      if (active) { remoteTypingTimer = setTimeout(function () { setRemoteTyping(false); }, REMOTE_TYPING_MAX_MS); }
    }

    /* ---------- protocol actions ---------- */

    function acceptNotice(acceptBtn, leaveBtn, errP) {
      if (!socket || !socket.connected || !session.notice) { errP.textContent = T.reconnecting; return; }
      var request = session.acceptRequest(chosenTopic());
      if (request.error) { errP.textContent = T.topicMissing; return; }
      acceptBtn.disabled = true;
      leaveBtn.disabled = true;
      socket.timeout(SEND_TIMEOUT_MS).emit("accept_notice", request.payload, function (timeoutErr, ack) {
        var result = session.onAcceptAck(timeoutErr, ack);
        if (!result.ok) {
          acceptBtn.disabled = false;
          leaveBtn.disabled = false;
          errP.textContent = errorText(result.error);
          return;
        }
        buildChatView();
        var raced = early;
        early = [];
        raced.forEach(addServerMessage);
        if (session.status === "closed") { markClosed(); return; }
        refreshStatus();
        setComposerEnabled(true);
        if (isOpen()) { chat.input.focus(); }
      });
    }

    function declineNotice() {
      if (socket && socket.connected) {
        socket.emit("decline_notice", {}, function () { disconnectQuietly(); });
        // If the ack never comes, leave anyway.
        setTimeout(disconnectQuietly, 2000);
      } else {
        disconnectQuietly();
      }
      session.decline();
      showLeft();
    }

    function endChat() {
      if (!socket || !socket.connected) { showChatError({ code: "server_error" }); return; }
      chat.end.disabled = true;
      socket.timeout(SEND_TIMEOUT_MS).emit("end", {}, function (timeoutErr, ack) {
        var result = session.onEndAck(timeoutErr, ack);
        if (result.closed) { markClosed(); return; }
        if (chat) { chat.end.disabled = false; }
        showChatError(result.error);
      });
    }

    // "Zakończ czat" asks first: a small inline dialog (no window.confirm), keyboard operable, Escape cancels.
    function askEnd() {
      if (!chat || chat.confirm) { return; }
      var box = el("div", {
        className: "cim-confirm", role: "alertdialog", "aria-modal": "false",
        "aria-labelledby": "cim-confirm-q", "data-cim-end-confirm": ""
      });
      var q = el("p", { id: "cim-confirm-q", className: "cim-confirm__q" }, T.endQuestion);
      var actions = el("div", { className: "cim-actions" });
      var yes = el("button", { type: "button", className: "cim-btn cim-btn--primary", "data-cim-end-yes": "" }, T.endConfirm);
      var no = el("button", { type: "button", className: "cim-btn cim-btn--secondary", "data-cim-end-no": "" }, T.endCancel);
      actions.appendChild(yes);
      actions.appendChild(no);
      box.appendChild(q);
      box.appendChild(actions);
      function dismiss(refocus) {
        if (box.parentNode) { box.parentNode.removeChild(box); }
        if (chat) {
          chat.confirm = null;
          chat.end.hidden = false;
          if (refocus && !chat.end.disabled) { chat.end.focus(); }
        }
      }
      yes.addEventListener("click", function () { dismiss(false); endChat(); });
      no.addEventListener("click", function () { dismiss(true); });
      box.addEventListener("keydown", function (e) {
        if (e.key === "Escape" || e.key === "Esc") { e.stopPropagation(); e.preventDefault(); dismiss(true); }
      });
      chat.confirm = box;
      chat.end.hidden = true;
      chat.form.appendChild(box);
      no.focus();
    }

    function markClosed() {
      session.markClosed();
      deskToken = session.closedToken || deskToken;  // kept for the chat's copy (the resident's side of the desk, below)
      setRemoteTyping(false);
      if (!chat) { return; }
      setComposerEnabled(false);
      if (chat.confirm && chat.confirm.parentNode) { chat.confirm.parentNode.removeChild(chat.confirm); }
      chat.confirm = null;
      chat.form.hidden = true;
      if (!body.querySelector("[data-cim-new-chat]")) {
        var again = el("button", { type: "button", className: "cim-btn cim-btn--primary cim-newchat", "data-cim-new-chat": "" }, T.newChat);
        again.addEventListener("click", restart);
        body.appendChild(again);
        if (panel.contains(document.activeElement) || document.activeElement === document.body) {
          if (isOpen()) { again.focus(); }
        }
      }
      deskAfterClose();
      refreshStatus();
    }

    function resumeInvalid() {
      session.dropChat();
      if (socket) { intentionalDisconnect = true; socket.disconnect(); }
      session.status = null;
      statusNote = T.errors.resume_invalid;
      showConnecting();
      if (socket) { intentionalDisconnect = false; socket.connect(); }
    }

    function restart() {
      statusNote = "";
      deskBox = null;
      deskChatRated = false;
      deskToken = null;
      session.closedToken = null;
      disconnectQuietly();
      session.dropChat();
      session.reset();
      socket = null;
      connect();
      if (isOpen()) { focusFirst(); }
    }

    function disconnectQuietly() {
      if (!socket) { return; }
      intentionalDisconnect = true;
      var s = socket;
      s.off();
      s.disconnect();
    }

    /* ---------- the resident's side of the desk: offline message, receipt and copy, rating (issue 17) ---------- */

    var DESK_STRINGS = {
      pl: {
        offerHeading: "Zostaw wiadomość",
        offerIntro: "Nikt z konsultantów nie może teraz odpowiedzieć. Zostaw wiadomość, a odpowiemy e-mailem, telefonicznie lub listownie.",
        offer: "Zostaw wiadomość",
        noticeFirst: "Wysyłając wiadomość, akceptujesz informację o przetwarzaniu danych osobowych powyżej.",
        name: "Imię i nazwisko (nieobowiązkowe)",
        contact: "E-mail lub numer telefonu do odpowiedzi",
        contactHint: "Np. jan.kowalski@example.pl albo 601 234 567.",
        text: "Treść wiadomości",
        sendMessage: "Wyślij wiadomość",
        cancel: "Anuluj",
        contactMissing: "Podaj adres e-mail lub numer telefonu, na który mamy odpowiedzieć.",
        textMissing: "Wpisz treść wiadomości.",
        sentHeading: "Wiadomość została zapisana",
        sentText: "Odpowiemy, gdy tylko konsultanci wrócą do pracy. Numer Twojej wiadomości:",
        receiptHeading: "Potwierdzenie rozmowy",
        receiptIntro: "Zapisz numer czatu i kod. Kod pokazujemy tylko raz; będzie potrzebny, jeśli złożysz wniosek o odczytanie zapisu czatu.",
        reference: "Numer czatu:",
        secret: "Kod:",
        copyHeading: "Kopia rozmowy",
        downloadText: "Pobierz zapis rozmowy (tekst)",
        downloadPdf: "Pobierz zapis rozmowy (PDF)",
        lastCopy: "Zapis Twojej ostatniej rozmowy:",
        copyFailed: "Nie udało się pobrać zapisu rozmowy. Spróbuj ponownie.",
        rateHeading: "Jak oceniasz rozmowę?",
        rateLegend: "Ocena od 1 (źle) do 5 (bardzo dobrze)",
        rateLabels: ["1 – źle", "2", "3", "4", "5 – bardzo dobrze"],
        comment: "Komentarz (nieobowiązkowy)",
        commentHint: "Nie podawaj danych osobowych: komentarz nie jest łączony z rozmową.",
        rateSend: "Wyślij ocenę",
        rateMissing: "Wybierz ocenę od 1 do 5.",
        rateThanks: "Dziękujemy za ocenę.",
        rateAlready: "Ta rozmowa została już oceniona."
      },
      en: {
        offerHeading: "Send us a message",
        offerIntro: "No consultant can answer right now. Leave a message and we will reply by e-mail, phone or letter.",
        offer: "Send us a message",
        noticeFirst: "By sending the message you accept the personal data notice above.",
        name: "Name (optional)",
        contact: "E-mail or phone number for the reply",
        contactHint: "E.g. jan.kowalski@example.pl or 601 234 567.",
        text: "Your message",
        sendMessage: "Send the message",
        cancel: "Cancel",
        contactMissing: "Give the e-mail address or phone number we should reply to.",
        textMissing: "Type your message.",
        sentHeading: "Your message has been saved",
        sentText: "We will reply as soon as the consultants are back. Your message's reference:",
        receiptHeading: "Your chat receipt",
        receiptIntro: "Write down the chat reference and code. The code is shown only once; you need it to request the reading of the chat record.",
        reference: "Chat reference:",
        secret: "Code:",
        copyHeading: "Copy of the chat",
        downloadText: "Download the transcript (text)",
        downloadPdf: "Download the transcript (PDF)",
        lastCopy: "The transcript of your last chat:",
        copyFailed: "The transcript could not be downloaded. Please try again.",
        rateHeading: "How was the chat?",
        rateLegend: "Rating from 1 (poor) to 5 (very good)",
        rateLabels: ["1 – poor", "2", "3", "4", "5 – very good"],
        comment: "Comment (optional)",
        commentHint: "Please leave out personal data: the comment is not linked to the chat.",
        rateSend: "Send the rating",
        rateMissing: "Choose a rating from 1 to 5.",
        rateThanks: "Thank you for the rating.",
        rateAlready: "This chat has already been rated."
      }
    };
    var D = DESK_STRINGS[lang];
    var deskBox = null;           // the section under a closed chat: receipt, copy, rating
    var deskToken = null;         // the ended chat's resume token: it still fetches that chat's copy
    var deskChatRated = false;

    function deskField(id, labelText, control, hintText) {
      var wrap = el("div", { className: "cim-desk__field" });
      wrap.appendChild(el("label", { "for": id, className: "cim-desk__label" }, labelText));
      if (hintText) {
        wrap.appendChild(el("span", { id: id + "-hint", className: "cim-desk__hint cim-muted" }, hintText));
        control.setAttribute("aria-describedby", id + "-hint");
      }
      control.id = id;
      wrap.appendChild(control);
      return wrap;
    }

    // The offer of an offline message: a button under the notice (nobody available) or the offline view.
    function deskOfflineOffer(into, noticePayload) {
      if (!noticePayload || noticePayload.notice_id == null) { return; }
      var section = el("div", { className: "cim-desk cim-desk--offer", "data-cim-offline-offer": "" });
      section.appendChild(el("p", { className: "cim-muted" }, D.offerIntro));
      var btn = el("button", { type: "button", className: "cim-btn cim-btn--primary", "data-cim-offline-open": "" }, D.offer);
      btn.addEventListener("click", function () { deskOfflineForm(noticePayload); });
      section.appendChild(btn);
      into.appendChild(section);
    }

    function deskOfflineForm(noticePayload) {
      view = "offline-form";
      panel.setAttribute("data-view", view);
      clearBody();
      var box = el("form", { className: "cim-desk cim-desk--form", novalidate: true, "data-cim-offline-form": "",
                             "aria-labelledby": "cim-offline-heading" });
      box.appendChild(el("h3", { id: "cim-offline-heading", tabindex: "-1", "data-cim-autofocus": "" }, D.offerHeading));
      box.appendChild(el("h4", { className: "cim-desk__subheading" }, T.noticeHeading));
      var text = el("div", { className: "cim-notice__text", "data-cim-notice": "" });
      if (noticePayload.lang) { text.setAttribute("lang", String(noticePayload.lang)); }
      String(noticePayload.text || "").split(/\n{2,}/).forEach(function (para) { text.appendChild(el("p", null, para)); });
      box.appendChild(text);
      box.appendChild(el("p", { className: "cim-muted" }, D.noticeFirst));
      var name = el("input", { type: "text", maxlength: "200", autocomplete: "name", "data-cim-offline-name": "" });
      var contact = el("input", { type: "text", maxlength: "200", autocomplete: "email", required: true,
                                  "aria-required": "true", "data-cim-offline-contact": "" });
      var message = el("textarea", { rows: "5", maxlength: String(session.maxLength), required: true, "aria-required": "true",
                                     "data-cim-offline-text": "" });
      box.appendChild(deskField("cim-offline-name", D.name, name));
      box.appendChild(deskField("cim-offline-contact", D.contact, contact, D.contactHint));
      box.appendChild(deskField("cim-offline-text", D.text, message));
      var err = el("p", { className: "cim-error", role: "alert", "data-cim-offline-error": "" });
      box.appendChild(err);
      var actions = el("div", { className: "cim-actions" });
      var send = el("button", { type: "submit", className: "cim-btn cim-btn--primary", "data-cim-offline-send": "" }, D.sendMessage);
      var cancel = el("button", { type: "button", className: "cim-btn cim-btn--secondary" }, D.cancel);
      cancel.addEventListener("click", restart);
      actions.appendChild(send);
      actions.appendChild(cancel);
      box.appendChild(actions);
      box.addEventListener("submit", function (e) {
        e.preventDefault();
        err.textContent = "";
        if (!contact.value.trim()) { err.textContent = D.contactMissing; contact.setAttribute("aria-invalid", "true"); contact.focus(); return; }
        contact.removeAttribute("aria-invalid");
        name.removeAttribute("aria-invalid");
        if (!message.value.trim()) { err.textContent = D.textMissing; message.focus(); return; }
        if (!socket) { err.textContent = T.connectFailed; return; }
        send.disabled = true;
        var payload = { notice_id: noticePayload.notice_id, contact: contact.value, text: message.value };
        if (name.value.trim()) { payload.name = name.value; }
        socket.timeout(SEND_TIMEOUT_MS).emit("offline_message", payload, function (timeoutErr, ack) {
          send.disabled = false;
          if (timeoutErr || !ack) { err.textContent = T.errors.server_error; return; }
          if (!ack.ok) {
            var reason = Core.errorReason(ack.error);
            err.textContent = errorText(ack.error);
            var field = /^contact_/.test(reason || "") ? contact : reason === "name_too_long" ? name : null;
            if (field) { field.setAttribute("aria-invalid", "true"); field.focus(); }
            return;
          }
          deskOfflineSent(ack.reference);
        });
      });
      body.appendChild(box);
      refreshStatus();
      if (isOpen()) { focusFirst(); }
    }

    function deskOfflineSent(reference) {
      view = "offline-sent";
      panel.setAttribute("data-view", view);
      clearBody();
      var box = el("div", { className: "cim-desk cim-ended", "data-cim-offline-sent": "" });
      box.appendChild(el("h3", { tabindex: "-1", "data-cim-autofocus": "" }, D.sentHeading));
      box.appendChild(el("p", null, D.sentText));
      box.appendChild(el("p", { className: "cim-desk__code", "data-cim-offline-reference": "" }, reference));
      body.appendChild(box);
      setStatus(D.sentHeading, null);
      if (isOpen()) { focusFirst(); }
    }

    function deskSection() {
      if (deskBox && body.contains(deskBox)) { return deskBox; }
      deskBox = el("div", { className: "cim-desk cim-desk--after", "data-cim-after": "" });
      var again = body.querySelector("[data-cim-new-chat]");
      if (again) { body.insertBefore(deskBox, again); } else { body.appendChild(deskBox); }
      return deskBox;
    }

    // The receipt, shown once (never kept in the browser's storage).
    function deskReceipt(receipt) {
      if (!receipt || !receipt.reference) { return; }
      var section = deskSection();
      var box = el("div", { className: "cim-desk__receipt", role: "region", "aria-labelledby": "cim-receipt-heading",
                            "data-cim-receipt": "" });
      box.appendChild(el("h3", { id: "cim-receipt-heading" }, D.receiptHeading));
      box.appendChild(el("p", { className: "cim-muted" }, D.receiptIntro));
      var dl = el("dl", { className: "cim-desk__pairs" });
      dl.appendChild(el("dt", null, D.reference));
      dl.appendChild(el("dd", { className: "cim-desk__code", "data-cim-receipt-reference": "" }, receipt.reference));
      dl.appendChild(el("dt", null, D.secret));
      dl.appendChild(el("dd", { className: "cim-desk__code", "data-cim-receipt-secret": "" }, receipt.secret));
      box.appendChild(dl);
      section.insertBefore(box, section.firstChild);
      var copy = load("copy");
      if (copy && !copy.reference) { copy.reference = receipt.reference; store("copy", copy); }
    }

    function deskDownload(name, blob) {
      var url = URL.createObjectURL(blob);
      var a = el("a", { href: url, download: name, hidden: true });
      document.body.appendChild(a);
      a.click();
      setTimeout(function () { URL.revokeObjectURL(url); a.parentNode && a.parentNode.removeChild(a); }, 1000);
    }

    function deskCopyButtons(into, copy) {
      var actions = el("div", { className: "cim-actions", "data-cim-copy": "" });
      var asText = el("button", { type: "button", className: "cim-btn cim-btn--secondary", "data-cim-download-text": "" }, D.downloadText);
      var asPdf = el("button", { type: "button", className: "cim-btn cim-btn--secondary", "data-cim-download-pdf": "" }, D.downloadPdf);
      var base = "czat-" + String(copy.reference || "cim").replace(/[^A-Za-z0-9-]/g, "");
      asText.addEventListener("click", function () {
        deskDownload(base + ".txt", new Blob([copy.text], { type: "text/plain;charset=utf-8" }));
      });
      var pdfErr = el("p", { className: "cim-error", role: "alert" });
      function savePdf(b64) {
        var raw = atob(b64);
        var bytes = new Uint8Array(raw.length);
        for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
        deskDownload(base + ".pdf", new Blob([bytes], { type: "application/pdf" }));
      }
      // The PDF is made on the first click only (it costs the server far more than the text), then kept.
      asPdf.addEventListener("click", function () {
        pdfErr.textContent = "";
        if (copy.pdf) { savePdf(copy.pdf); return; }
        if (!socket || !copy.token) { pdfErr.textContent = D.copyFailed; return; }
        asPdf.disabled = true;
        socket.timeout(SEND_TIMEOUT_MS).emit("transcript", { format: "pdf", token: copy.token }, function (e, ack) {
          asPdf.disabled = false;
          if (e || !ack || !ack.ok) { pdfErr.textContent = D.copyFailed; return; }
          copy.pdf = ack.pdf;
          store("copy", copy);
          savePdf(ack.pdf);
        });
      });
      actions.appendChild(asText);
      if (copy.pdf || copy.token) { actions.appendChild(asPdf); }
      into.appendChild(actions);
      into.appendChild(pdfErr);
    }

    // After the end: the copy (fetched once and kept for the rest of the browser session) and the rating.
    function deskAfterClose() {
      if (!chat || !socket) { return; }
      var section = deskSection();
      if (section.querySelector("[data-cim-copy-section]")) { return; }
      var copyBox = el("div", { className: "cim-desk__copy", "data-cim-copy-section": "" });
      copyBox.appendChild(el("h3", null, D.copyHeading));
      var copyErr = el("p", { className: "cim-error", role: "alert" });
      copyBox.appendChild(copyErr);
      section.appendChild(copyBox);
      var request = deskToken ? { token: deskToken } : {};
      socket.timeout(SEND_TIMEOUT_MS).emit("transcript", request, function (e1, textAck) {
        if (e1 || !textAck || !textAck.ok) { copyErr.textContent = D.copyFailed; return; }
        var reference = typeof textAck.reference === "string" ? textAck.reference : "";
        var copy = { reference: reference, text: textAck.text, token: deskToken, pdf: null };
        store("copy", copy);
        deskCopyButtons(copyBox, copy);
      });
      if (!deskChatRated) { section.appendChild(deskRatingForm()); }
    }

    function deskRatingForm() {
      var form = el("form", { className: "cim-desk__rating", novalidate: true, "data-cim-rating": "",
                              "aria-labelledby": "cim-rate-heading" });
      form.appendChild(el("h3", { id: "cim-rate-heading" }, D.rateHeading));
      var fieldset = el("fieldset", { className: "cim-desk__stars" });
      fieldset.appendChild(el("legend", null, D.rateLegend));
      for (var i = 1; i <= 5; i++) {
        var id = "cim-rate-" + i;
        var option = el("span", { className: "cim-desk__star" });
        option.appendChild(el("input", { type: "radio", name: "cim-rating", id: id, value: String(i), "data-cim-rate": String(i) }));
        option.appendChild(el("label", { "for": id }, D.rateLabels[i - 1]));
        fieldset.appendChild(option);
      }
      form.appendChild(fieldset);
      // one line (an input, not a textarea): after the end nothing in the panel looks like the message box
      var comment = el("input", { type: "text", maxlength: "1000", autocomplete: "off", "data-cim-rate-comment": "" });
      form.appendChild(deskField("cim-rate-comment", D.comment, comment, D.commentHint));
      var note = el("p", { className: "cim-desk__note", role: "status", "aria-live": "polite", "data-cim-rate-status": "" });
      var err = el("p", { className: "cim-error", role: "alert", "data-cim-rate-error": "" });
      var send = el("button", { type: "submit", className: "cim-btn cim-btn--primary", "data-cim-rate-send": "" }, D.rateSend);
      form.appendChild(err);
      form.appendChild(send);
      form.appendChild(note);
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        err.textContent = "";
        var chosen = form.querySelector('input[name="cim-rating"]:checked');
        if (!chosen) { err.textContent = D.rateMissing; fieldset.querySelector("input").focus(); return; }
        if (!socket) { err.textContent = T.connectFailed; return; }
        var payload = { rating: parseInt(chosen.value, 10) };
        if (comment.value.trim()) { payload.comment = comment.value; }
        send.disabled = true;
        socket.timeout(SEND_TIMEOUT_MS).emit("rate", payload, function (timeoutErr, ack) {
          if (timeoutErr || !ack) { send.disabled = false; err.textContent = T.errors.server_error; return; }
          if (!ack.ok) {
            if (Core.errorReason(ack.error) === "already_rated") {
              deskChatRated = true; fieldset.disabled = true; comment.disabled = true; note.textContent = D.rateAlready; return;
            }
            send.disabled = false;
            err.textContent = errorText(ack.error);
            return;
          }
          deskChatRated = true;
          fieldset.disabled = true;
          comment.disabled = true;
          send.hidden = true;
          note.textContent = D.rateThanks;
        });
      });
      return form;
    }

    // The last chat's copy stays downloadable for the browser session (in the notice view of a new chat).
    function deskLastCopy(into) {
      var copy = load("copy");
      if (!copy || !copy.text) { return; }
      var box = el("div", { className: "cim-desk__copy", "data-cim-last-copy": "" });
      box.appendChild(el("p", { className: "cim-muted" }, D.lastCopy + (copy.reference ? " " + copy.reference : "")));
      deskCopyButtons(box, copy);
      into.appendChild(box);
    }

    /* ---------- the socket ---------- */

    function connect() {
      showConnecting();
      session.connecting();
      loadSocketIo().then(function (io) {
        var s = io(serverOrigin + "/resident", {
          path: socketPath,
          forceNew: true,  // each chat gets its own connection; nothing is shared with an earlier one
          // A function, so every reconnection presents the current resume token.
          auth: function (cb) { cb(session.auth()); }
        });
        socket = s;
        intentionalDisconnect = false;
        wire(s);
      }, function () {
        session.failed();
        showFailed(T.connectFailed);
      });
    }

    function wire(s) {
      s.on("connect", function () {
        if (disconnectedShown) {
          disconnectedShown = false;
          setStatus(T.reconnected, null);
          setTimeout(refreshStatus, 2000);
        }
        if (view === "chat" && token()) { flushOutbox(); }
      });

      s.on("disconnect", function (reason) {
        if (intentionalDisconnect || reason === "io client disconnect") { return; }
        disconnectedShown = true;
        typingActive = false;
        setRemoteTyping(false);
        setStatus(T.reconnecting, "warn");
        if (reason === "io server disconnect") {
          // The server dropped us on purpose; socket.io will not retry by itself.
          setTimeout(function () { if (socket === s && !s.connected) { s.connect(); } }, 1000);
        }
      });

      s.on("connect_error", function (err) {
        var refused = session.onConnectError(err, s.active);
        if (refused.kind === "resume_invalid") { resumeInvalid(); return; }
        if (refused.kind === "retrying") {  // transport failure: socket.io keeps retrying
          if (view === "connecting") { setStatus(T.connectFailed + " " + T.reconnecting, "warn"); }
          else { disconnectedShown = true; setStatus(T.reconnecting, "warn"); }
          return;
        }
        // Refused by the server (middleware): show why and let the resident retry.
        if (refused.kind === "offline") {
          showOffline(session.onOffline({ hours: refused.hours }));
          return;
        }
        showFailed(refused.code ? errorText(refused) : T.connectFailed);
      });

      // The server no longer knows an open chat of ours when it sends the notice: closed or expired
      // (the session then drops its token and outbox).
      s.on("notice", function (payload) { showNotice(session.onNotice(payload).notice); });

      s.on("offline", function (payload) { showOffline(session.onOffline(payload)); });

      s.on("history", function (payload) {
        var history = session.onHistory(payload);
        var pending = session.outbox.list();
        var draft = chat ? chat.input.value : "";
        var hadFocus = !!(chat && document.activeElement === chat.input);
        early = [];
        buildChatView();
        chat.input.value = draft;
        updateCounter();
        history.messages.forEach(addServerMessage);
        pending.forEach(function (entry) { if (session.outbox.has(entry)) { renderPending(entry); } });
        if (session.status === "closed") { markClosed(); }
        else {
          setComposerEnabled(true);
          flushOutbox();
          if (isOpen() && (hadFocus || panel.contains(document.activeElement))) { chat.input.focus(); }
        }
        refreshStatus();
        scrollLog();
      });

      s.on("message", function (m) { addServerMessage(session.onMessage(m)); });

      s.on("state", function (st) {
        var state = session.onState(st);
        if (!state) { return; }
        if (state.closed) { markClosed(); if (state.receipt) { deskReceipt(state.receipt); } } else { refreshStatus(); }
      });

      s.on("typing", function (t) { setRemoteTyping(!!(t && t.active)); });
    }

    /* ---------- open / close ---------- */

    function isOpen() { return !panel.hidden; }

    function open(moveFocus) {
      panel.hidden = false;
      root.classList.add("cim-w--open");
      launcher.setAttribute("aria-expanded", "true");
      unread = 0;
      badge.hidden = true;
      store("open", true);
      if (view === "idle") { connect(); }
      if (moveFocus !== false) { focusFirst(); }
      scrollLog();
    }

    function close() {
      panel.hidden = true;
      root.classList.remove("cim-w--open");
      launcher.setAttribute("aria-expanded", "false");
      store("open", null);
      launcher.focus();
    }

    launcher.addEventListener("click", function () { isOpen() ? close() : open(true); });
    closeBtn.addEventListener("click", close);
    panel.addEventListener("keydown", function (e) {
      if (e.key === "Escape" || e.key === "Esc") { e.stopPropagation(); close(); }
    });

    function mount() {
      injectStylesheet();
      document.body.appendChild(root);
      // After a reload in the middle of a chat: reconnect, resume, and reopen the panel
      // (without stealing focus from the page the resident is reading).
      if (token()) {
        connect();
        if (load("open")) { panel.classList.add("cim-panel--instant"); open(false); }
      }
    }

    if (document.body) { mount(); } else { document.addEventListener("DOMContentLoaded", mount); }

    return { open: open, close: close, socket: function () { return socket; }, session: session };
  }
})();
