/* Concierge web chat: plain JavaScript, no build step, no external assets.
 *
 * Everything from the server is rendered with textContent (never parsed as HTML), so HTML or
 * script in a message is shown as text. The token that opens the conversation lives in
 * localStorage; the server picks the conversation from it.
 */
(function () {
  "use strict";

  var TOKEN_KEY = "concierge.token";
  var MIN_BACKOFF_MS = 1000;
  var MAX_BACKOFF_MS = 30000;

  var log = document.getElementById("log");
  var statusLine = document.getElementById("status");
  var typing = document.getElementById("typing");
  var form = document.getElementById("composer");
  var input = document.getElementById("message");

  var socket = null;
  var ready = false;          // hello answered with history
  var pending = [];           // {frame, shown, element} typed offline, sent after reconnect
  var backoff = MIN_BACKOFF_MS;
  var reconnectTimer = null;

  function storedToken() {
    try { return window.localStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
  }

  function storeToken(token) {
    try { window.localStorage.setItem(TOKEN_KEY, token); } catch (e) { /* private mode */ }
  }

  function setStatus(text) {
    statusLine.textContent = text || "";
  }

  function setTyping(on) {
    typing.hidden = !on;
    if (on) { scrollToEnd(); }
  }

  function scrollToEnd() {
    log.scrollTop = log.scrollHeight;
  }

  function clearLog() {
    while (log.firstChild) { log.removeChild(log.firstChild); }
  }

  function roleLabel(role) {
    if (role === "customer") { return "You"; }
    if (role === "agent") { return "Agent"; }
    if (role === "system") { return "Notice"; }
    return "Concierge";
  }

  function renderButtons(container, buttons) {
    if (!buttons || !buttons.length) { return; }
    var group = document.createElement("div");
    group.className = "buttons";
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", "Suggested replies");
    buttons.forEach(function (button) {
      var element = document.createElement("button");
      element.type = "button";
      element.className = "quick-reply";
      element.textContent = button.title;
      element.addEventListener("click", function () {
        sendFrame({ type: "button", title: button.title, payload: button.payload }, button.title);
        input.focus();
      });
      group.appendChild(element);
    });
    container.appendChild(group);
  }

  function renderCitation(container, citation) {
    if (!citation || !citation.article_id) { return; }
    var source = document.createElement("p");
    source.className = "citation";
    var link = document.createElement("a");
    link.href = "/articles/" + encodeURIComponent(citation.article_id);
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    link.textContent = "Source: " + (citation.title || citation.article_id);
    var hint = document.createElement("span");
    hint.className = "visually-hidden";
    hint.textContent = " (opens in a new tab)";
    link.appendChild(hint);
    source.appendChild(link);
    container.appendChild(source);
  }

  function renderHandoff(container, handoff) {
    if (!handoff) { return; }
    var note = document.createElement("p");
    note.className = "handoff-note";
    note.textContent = handoff.team
      ? "A member of " + handoff.team + " has been asked to join this chat."
      : "A member of our team has been asked to join this chat.";
    container.appendChild(note);
  }

  function renderMessage(message) {
    var item = document.createElement("div");
    item.className = "message message-" + (message.role || "bot");
    if (message.status === "rejected") { item.classList.add("message-rejected"); }
    var who = document.createElement("span");
    who.className = "visually-hidden";
    who.textContent = roleLabel(message.role) + ": ";
    item.appendChild(who);
    if (message.text) {
      var text = document.createElement("p");
      text.className = "text";
      text.textContent = message.text;
      item.appendChild(text);
    }
    renderCitation(item, message.citation);
    renderButtons(item, message.buttons);
    renderHandoff(item, message.handoff);
    log.appendChild(item);
    scrollToEnd();
    return item;
  }

  function renderError(text) {
    renderMessage({ role: "system", text: text });
  }

  function socketUrl() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    return scheme + window.location.host + "/ws/chat";
  }

  function sendFrame(frame, shownText) {
    var item = renderMessage({ role: "customer", text: shownText });
    if (ready && socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(frame));
    } else {
      item.classList.add("message-queued");
      pending.push({ frame: frame, shown: shownText, element: item });
      setStatus("Reconnecting… your message will be sent when the connection is back.");
      connectSoon(0);
    }
  }

  function flushPending() {
    while (pending.length && socket && socket.readyState === WebSocket.OPEN) {
      var queued = pending.shift();
      socket.send(JSON.stringify(queued.frame));
      queued.element.classList.remove("message-queued");
    }
  }

  function handleFrame(frame) {
    switch (frame.type) {
      case "session":
        storeToken(frame.token);
        break;
      case "history":
        clearLog();
        (frame.messages || []).forEach(renderMessage);
        // Messages typed while offline are not in the history yet: show them again.
        pending.forEach(function (queued) {
          queued.element = renderMessage({ role: "customer", text: queued.shown });
          queued.element.classList.add("message-queued");
        });
        ready = true;
        backoff = MIN_BACKOFF_MS;
        setStatus("");
        flushPending();
        break;
      case "typing":
        setTyping(Boolean(frame.on));
        break;
      case "message":
        renderMessage(frame);
        break;
      case "error":
        renderError(frame.message || "Sorry — something went wrong.");
        break;
      default:
        break; // unknown frame types from newer servers are ignored
    }
  }

  function connect() {
    reconnectTimer = null;
    if (socket && (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING)) {
      return;
    }
    ready = false;
    var ws = new WebSocket(socketUrl());
    socket = ws;
    ws.addEventListener("open", function () {
      var hello = { type: "hello" };
      var token = storedToken();
      if (token) { hello.token = token; }
      ws.send(JSON.stringify(hello));
    });
    ws.addEventListener("message", function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      if (frame && typeof frame === "object") { handleFrame(frame); }
    });
    ws.addEventListener("close", function () {
      if (socket !== ws) { return; }
      ready = false;
      setTyping(false);
      setStatus("Reconnecting…");
      connectSoon(backoff);
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    });
  }

  function connectSoon(delay) {
    if (reconnectTimer !== null) {
      if (delay > 0) { return; }
      window.clearTimeout(reconnectTimer);
    }
    var jitter = delay > 0 ? Math.floor(Math.random() * 500) : 0;
    reconnectTimer = window.setTimeout(connect, delay + jitter);
  }

  function submit() {
    var text = input.value;
    if (!text.trim()) { input.focus(); return; }
    input.value = "";
    autosize();
    sendFrame({ type: "message", text: text }, text);
  }

  function autosize() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, 160) + "px";
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    submit();
  });

  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    }
  });

  input.addEventListener("input", autosize);

  window.addEventListener("online", function () { connectSoon(0); });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && (!socket || socket.readyState === WebSocket.CLOSED)) {
      connectSoon(0);
    }
  });

  setStatus("Connecting…");
  connect();
  input.focus();
}());
