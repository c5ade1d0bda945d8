/* Concierge web chat: plain JavaScript, no build step, no external assets.
 *
 * Everything from the server is rendered with textContent (never parsed as HTML), so HTML or
 * script in a message is shown as text. The token that opens the conversation lives in
 * localStorage; the server picks the conversation from it.
 *
 * Messages can arrive more than once (an agent's reply pushed while the history is loading,
 * an upload's answer and its push): a message id already shown is skipped. Files are sent
 * over HTTP (POST /api/conversations/attachments, the token as a Bearer header) and shown
 * through short-lived signed links; an expired link is refreshed when it is clicked.
 */
(function () {
  "use strict";

  var TOKEN_KEY = "concierge.token";
  var MIN_BACKOFF_MS = 1000;
  var MAX_BACKOFF_MS = 30000;
  var RATING_PREFIX = "/concierge_rate";
  var UPLOAD_URL = "/api/conversations/attachments";
  var ACCEPTED_TYPES = ["image/jpeg", "image/png", "image/webp", "application/pdf"];
  var TEAM_LABEL = "Kestrel support";

  var log = document.getElementById("log");
  var statusLine = document.getElementById("status");
  var typing = document.getElementById("typing");
  var form = document.getElementById("composer");
  var input = document.getElementById("message");
  var attachButton = document.getElementById("attach");
  var fileInput = document.getElementById("attachment");
  var maxAttachmentBytes = Number(form.getAttribute("data-max-attachment-bytes")) || 5 * 1024 * 1024;

  var socket = null;
  var ready = false;          // hello answered with history
  var pending = [];           // {frame, shown, element} typed offline, sent after reconnect
  var backoff = MIN_BACKOFF_MS;
  var reconnectTimer = null;
  var shownIds = {};          // message id -> true: each stored message is shown once
  var uploading = [];         // bubbles of files being sent, kept across history reloads

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
    shownIds = {};
  }

  function roleLabel(role) {
    if (role === "customer") { return "You"; }
    if (role === "agent") { return "Agent"; }
    if (role === "system") { return "Notice"; }
    return "Concierge";
  }

  function agentLabel(name) {
    var first = String(name || "").trim().split(/\s+/)[0];
    return (first || "Our team") + " · " + TEAM_LABEL;
  }

  function humanSize(bytes) {
    if (bytes >= 1024 * 1024) { return (Math.round(bytes / 104857.6) / 10) + " MB"; }
    if (bytes >= 1024) { return Math.round(bytes / 1024) + " KB"; }
    return bytes + " bytes";
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
        if (String(button.payload || "").indexOf(RATING_PREFIX) === 0) {
          // One rating per ticket: the choice is kept visible, the others are switched off.
          Array.prototype.forEach.call(group.querySelectorAll("button"), function (other) {
            other.disabled = true;
          });
          element.setAttribute("aria-pressed", "true");
        }
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
    link.href = "/articles/" + encodeURIComponent(citation.article_id) +
      (citation.anchor ? "#" + encodeURIComponent(citation.anchor) : "");
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    link.textContent = "Source: " + (citation.title || citation.article_id) +
      (citation.section ? ", section " + citation.section : "");
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

  function linkExpired(url) {
    var match = /[?&]exp=(\d+)/.exec(url || "");
    return !match || Number(match[1]) * 1000 < Date.now() + 5000;
  }

  function freshLink(attachment) {
    var token = storedToken();
    return window.fetch(UPLOAD_URL + "/" + encodeURIComponent(attachment.id), {
      headers: { "Authorization": "Bearer " + token },
      credentials: "omit"
    }).then(function (response) {
      if (!response.ok) { throw new Error("link refused"); }
      return response.json();
    }).then(function (fresh) { return fresh.url; });
  }

  function openFresh(event, link, attachment, image) {
    if (!linkExpired(link.getAttribute("href"))) { return; }
    event.preventDefault();
    freshLink(attachment).then(function (url) {
      link.href = url;
      if (image) {
        image.src = url;
        window.open(url, "_blank", "noopener");
      } else {
        window.location.assign(url);
      }
    }).catch(function () {
      renderError("Sorry — that file can't be opened right now. Please reload the page.");
    });
  }

  function renderAttachment(list, attachment) {
    if (!attachment || !attachment.url) { return; }
    var item = document.createElement("div");
    item.className = "attachment";
    var link = document.createElement("a");
    link.href = attachment.url;
    var image = null;
    if (/^image\//.test(attachment.content_type || "")) {
      link.className = "attachment-image";
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      image = document.createElement("img");
      image.className = "thumbnail";
      image.src = attachment.url;
      image.alt = attachment.filename || "Photo";
      image.loading = "lazy";
      image.decoding = "async";
      var retried = false;
      image.addEventListener("error", function () {
        if (retried) { return; }
        retried = true;
        freshLink(attachment).then(function (url) { image.src = url; link.href = url; })
          .catch(function () { /* the alt text stays */ });
      });
      link.appendChild(image);
      var hint = document.createElement("span");
      hint.className = "visually-hidden";
      hint.textContent = " (opens in a new tab)";
      link.appendChild(hint);
    } else {
      link.className = "attachment-file";
      link.setAttribute("download", attachment.filename || "attachment.pdf");
      var name = document.createElement("span");
      name.className = "attachment-name";
      name.textContent = attachment.filename || "Attachment";
      var meta = document.createElement("span");
      meta.className = "attachment-meta";
      meta.textContent = " (PDF, " + humanSize(attachment.size_bytes || 0) + ")";
      link.appendChild(name);
      link.appendChild(meta);
    }
    link.addEventListener("click", function (event) { openFresh(event, link, attachment, image); });
    item.appendChild(link);
    list.appendChild(item);
  }

  function renderAttachments(container, attachments) {
    if (!attachments || !attachments.length) { return; }
    var list = document.createElement("div");
    list.className = "attachments";
    attachments.forEach(function (attachment) { renderAttachment(list, attachment); });
    if (list.firstChild) { container.appendChild(list); }
  }

  function renderMessage(message) {
    if (message.id !== undefined && message.id !== null) {
      if (shownIds[message.id]) { return null; }  // already shown (history and push overlap)
      shownIds[message.id] = true;
    }
    var item = document.createElement("div");
    item.className = "message message-" + (message.role || "bot");
    if (message.status === "rejected") { item.classList.add("message-rejected"); }
    var who = document.createElement("span");
    if (message.role === "agent") {
      who.className = "sender";
      who.textContent = agentLabel(message.agent_name);
    } else {
      who.className = "visually-hidden";
      who.textContent = roleLabel(message.role) + ": ";
    }
    item.appendChild(who);
    if (message.text) {
      var text = document.createElement("p");
      text.className = "text";
      text.textContent = message.text;
      item.appendChild(text);
    }
    renderAttachments(item, message.attachments);
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
        uploading.forEach(function (bubble) { log.appendChild(bubble); });
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

  function uploadBubble(file) {
    var item = document.createElement("div");
    item.className = "message message-customer message-queued message-upload";
    var who = document.createElement("span");
    who.className = "visually-hidden";
    who.textContent = "You: ";
    var text = document.createElement("p");
    text.className = "text";
    text.textContent = "📎 " + file.name;
    var progress = document.createElement("progress");
    progress.className = "upload-progress";
    progress.setAttribute("aria-label", "Sending " + file.name);
    var note = document.createElement("p");
    note.className = "upload-note";
    note.textContent = "Sending… (" + humanSize(file.size) + ")";
    item.appendChild(who);
    item.appendChild(text);
    item.appendChild(progress);
    item.appendChild(note);
    log.appendChild(item);
    scrollToEnd();
    return item;
  }

  function refusal(file) {
    if (!file.size) { return "That file is empty — please choose another one."; }
    if (file.size > maxAttachmentBytes) {
      return "Sorry — that file is too big; attachments can be up to " +
        humanSize(maxAttachmentBytes) + ".";
    }
    if (file.type && ACCEPTED_TYPES.indexOf(file.type) < 0) {
      return "Sorry — I can only accept photos (JPEG, PNG or WebP) and PDF files.";
    }
    return null;
  }

  function uploadFinished(bubble) {
    uploading = uploading.filter(function (other) { return other !== bubble; });
    if (bubble.parentNode) { bubble.parentNode.removeChild(bubble); }
  }

  function sendFile(file) {
    var refused = refusal(file);
    if (refused) { renderError(refused); return; }
    var token = storedToken();
    if (!token) {
      renderError("The chat is still connecting — please try again in a moment.");
      return;
    }
    var bubble = uploadBubble(file);
    uploading.push(bubble);
    setStatus("Sending " + file.name + "…");
    window.fetch(UPLOAD_URL, {
      method: "POST",
      headers: {
        "Authorization": "Bearer " + token,
        "Content-Type": file.type || "application/octet-stream",
        "X-Filename": encodeURIComponent(file.name)
      },
      body: file,
      credentials: "omit"
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (!response.ok) {
          var error = new Error("refused");
          error.sentence = body.detail || body.error;
          throw error;
        }
        return body;
      });
    }).then(function (message) {
      uploadFinished(bubble);
      renderMessage(message);  // skipped if the socket already showed it
      var sent = "Sent " + file.name + ".";
      setStatus(sent);
      window.setTimeout(function () {
        if (statusLine.textContent === sent) { setStatus(""); }
      }, 5000);
    }).catch(function (error) {
      uploadFinished(bubble);
      setStatus("");
      renderError((error && error.sentence) ||
        "Sorry — that file couldn't be sent. Please check your connection and try again.");
    });
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

  attachButton.addEventListener("click", function () { fileInput.click(); });
  fileInput.addEventListener("change", function () {
    var chosen = Array.prototype.slice.call(fileInput.files || []);
    fileInput.value = "";  // choosing the same file again sends it again
    chosen.forEach(sendFile);
    attachButton.focus();
  });

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
