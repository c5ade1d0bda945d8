/* Concierge agent desk: the queue and the ticket page. Plain JavaScript, no build step.
 *
 * Everything that comes from the server is put on the page with textContent (never parsed as
 * HTML), so HTML or script a customer typed is shown as text. State-changing requests carry the
 * session's CSRF token (<meta name="csrf-token">) in the X-CSRF-Token header. Live updates come
 * from the server-sent events at /desk/events; after every (re)connection the page re-reads
 * what it shows, so nothing missed while disconnected is lost.
 */
(function () {
  "use strict";

  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  var ROLE_LABELS = { customer: "Customer", bot: "Bot", agent: "Agent", system: "System" };
  var TICKET_EVENTS = [
    "ticket.created", "ticket.updated", "ticket.assigned", "ticket.transferred",
    "ticket.closed", "ticket.removed"
  ];
  var GENERIC_ERROR = "Something went wrong. Please try again.";
  var QUEUE_REFRESH_MS = 60000;

  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrfToken = csrfMeta ? csrfMeta.getAttribute("content") : "";
  var errorBox = document.getElementById("action-error");

  // -- helpers ----------------------------------------------------------------------------------

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  function formatTime(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) { return ""; }
    return pad(d.getUTCDate()) + " " + MONTHS[d.getUTCMonth()] + " " + d.getUTCFullYear() +
      ", " + pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + " UTC";
  }

  function showError(message) {
    if (errorBox) { errorBox.textContent = message || ""; }
  }

  function errorText(data) {
    if (data && typeof data.error === "string") { return data.error; }
    if (data && typeof data.detail === "string") { return data.detail; }
    return GENERIC_ERROR;
  }

  function request(method, url, body) {
    var options = {
      method: method,
      credentials: "same-origin",
      headers: { "Accept": "application/json" }
    };
    if (method !== "GET") {
      options.headers["Content-Type"] = "application/json";
      options.headers["X-CSRF-Token"] = csrfToken;
      options.body = JSON.stringify(body || {});
    }
    return fetch(url, options).then(function (response) {
      if (response.status === 401) {
        window.location.assign("/desk/login?next=" + encodeURIComponent(window.location.pathname));
      }
      return response.json().catch(function () { return null; }).then(function (data) {
        return { ok: response.ok, status: response.status, data: data };
      });
    }, function () {
      return { ok: false, status: 0, data: { error: "The desk can't reach the server. Check your connection." } };
    });
  }

  // Attachments: the file itself is the request body (see bot/web/routes/attachments.py).
  function uploadFile(url, file) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      body: file,
      headers: {
        "Content-Type": file.type || "application/octet-stream",
        "X-Filename": encodeURIComponent(file.name),
        "X-CSRF-Token": csrfToken
      }
    }).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (data) {
        var error = data && (data.detail || data.error);
        return { ok: response.ok, status: response.status, data: response.ok ? data : { error: error || "The file could not be attached." } };
      });
    }, function () {
      return { ok: false, status: 0, data: { error: "The desk can't reach the server. Check your connection." } };
    });
  }

  function formFields(form) {
    var fields = {};
    new FormData(form).forEach(function (value, key) {
      if (key !== "csrf_token" && typeof value === "string") { fields[key] = value; }
    });
    return fields;
  }

  function insertAtCursor(textarea, text) {
    var start = textarea.selectionStart || 0;
    var end = textarea.selectionEnd || 0;
    var before = textarea.value.slice(0, start);
    var after = textarea.value.slice(end);
    var glue = before && !/\s$/.test(before) ? "\n\n" : "";
    textarea.value = before + glue + text + after;
    var caret = (before + glue + text).length;
    textarea.focus();
    textarea.setSelectionRange(caret, caret);
    textarea.dispatchEvent(new Event("input"));
  }

  function openLiveChannel(url, handlers, connectionState) {
    if (!window.EventSource) {
      if (connectionState) { connectionState.textContent = "Live updates are not supported by this browser; reload to refresh."; }
      return null;
    }
    var source = new EventSource(url);
    source.addEventListener("ready", function () {
      if (connectionState) { connectionState.textContent = "Live updates are on."; }
      handlers.ready();
    });
    source.addEventListener("signed_out", function () {
      source.close();
      window.location.assign("/desk/login?next=" + encodeURIComponent(window.location.pathname));
    });
    source.onerror = function () {
      if (connectionState) { connectionState.textContent = "Live updates are reconnecting…"; }
    };
    TICKET_EVENTS.concat(["ticket.message"]).forEach(function (name) {
      source.addEventListener(name, function (event) {
        var data;
        try { data = JSON.parse(event.data); } catch (e) { return; }
        handlers.event(name, data);
      });
    });
    return source;
  }

  // -- the queue --------------------------------------------------------------------------------

  function initQueue(root) {
    var rows = document.getElementById("queue-rows");
    var empty = document.getElementById("queue-empty");
    var count = document.getElementById("queue-count");
    var announce = document.getElementById("queue-announce");
    var connection = document.getElementById("connection-state");
    var known = {};
    var refreshTimer = null;

    Array.prototype.forEach.call(rows.querySelectorAll("tr[data-ticket-id]"), function (row) {
      known[row.getAttribute("data-ticket-id")] = true;
    });

    function claimForm(ticketId) {
      var form = el("form");
      form.method = "post";
      form.action = "/desk/api/tickets/" + ticketId + "/claim";
      form.setAttribute("data-desk-action", "claim");
      form.setAttribute("data-ticket-id", String(ticketId));
      var token = el("input");
      token.type = "hidden";
      token.name = "csrf_token";
      token.value = csrfToken;
      var button = el("button", null, "Claim");
      button.type = "submit";
      button.setAttribute("aria-label", "Claim ticket #" + ticketId);
      form.appendChild(token);
      form.appendChild(button);
      return form;
    }

    function row(item) {
      var t = item.ticket;
      var tr = el("tr");
      tr.setAttribute("data-ticket-id", String(t.id));

      var priority = el("td");
      priority.appendChild(el("span", "priority priority-" + t.priority_label.toLowerCase(), t.priority_label));
      tr.appendChild(priority);

      var ticket = el("td");
      var link = el("a", null, "#" + t.id + " · " + t.reason);
      link.href = "/desk/tickets/" + t.id;
      ticket.appendChild(link);
      ticket.appendChild(el("span", "row-summary", item.summary_preview));
      tr.appendChild(ticket);

      var customer = el("td", null, item.customer_name + (item.account_name ? " · " + item.account_name : ""));
      if (item.customer_known && !item.customer_verified) {
        customer.appendChild(document.createTextNode(" "));
        customer.appendChild(el("span", "badge badge-unverified", "unverified"));
      }
      tr.appendChild(customer);

      tr.appendChild(el("td", null, t.team_name || "No team"));
      var waiting = el("td");
      var time = el("time", null, t.waiting_label);
      time.setAttribute("datetime", t.created_at);
      waiting.appendChild(time);
      tr.appendChild(waiting);
      tr.appendChild(el("td", null, t.status_label + (t.assignee_name ? " (" + t.assignee_name + ")" : "")));

      var action = el("td");
      if (t.status === "queued") {
        action.appendChild(claimForm(t.id));
      } else {
        var open = el("a", "button secondary", "Open");
        open.href = "/desk/tickets/" + t.id;
        open.setAttribute("aria-label", "Open ticket #" + t.id);
        action.appendChild(open);
      }
      tr.appendChild(action);
      return tr;
    }

    function render(payload) {
      var focusedId = null;
      var active = document.activeElement;
      if (active && rows.contains(active)) {
        var activeRow = active.closest("tr[data-ticket-id]");
        focusedId = activeRow ? activeRow.getAttribute("data-ticket-id") : null;
      }
      var fresh = [];
      var seen = {};
      while (rows.firstChild) { rows.removeChild(rows.firstChild); }
      payload.items.forEach(function (item) {
        var id = String(item.ticket.id);
        seen[id] = true;
        if (!known[id]) { fresh.push(item); }
        rows.appendChild(row(item));
      });
      known = seen;
      empty.hidden = payload.items.length > 0;
      count.textContent = String(payload.queued);
      document.title = "(" + payload.queued + ") Queue · Concierge desk";
      if (focusedId) {
        var again = rows.querySelector('tr[data-ticket-id="' + focusedId + '"] a, tr[data-ticket-id="' + focusedId + '"] button');
        if (again) { again.focus(); }
      }
      if (fresh.length) {
        announce.textContent = fresh.map(function (item) {
          return "New ticket #" + item.ticket.id + ", " + item.ticket.priority_label + " priority, " +
            (item.ticket.team_name || "no team") + ": " + item.ticket.reason + ".";
        }).join(" ");
      }
    }

    function refresh() {
      refreshTimer = null;
      request("GET", root.getAttribute("data-queue-url")).then(function (result) {
        if (result.ok && result.data) { render(result.data); }
      });
    }

    function scheduleRefresh() {
      if (refreshTimer === null) { refreshTimer = window.setTimeout(refresh, 150); }
    }

    document.addEventListener("submit", function (event) {
      var form = event.target;
      if (!form.matches || !form.matches('form[data-desk-action="claim"]')) { return; }
      event.preventDefault();
      var ticketId = form.getAttribute("data-ticket-id");
      var button = form.querySelector("button");
      if (button) { button.disabled = true; }
      showError("");
      request("POST", form.action, {}).then(function (result) {
        if (result.ok) {
          window.location.assign("/desk/tickets/" + ticketId);
          return;
        }
        if (button) { button.disabled = false; }
        showError(errorText(result.data));
        scheduleRefresh();
      });
    });

    openLiveChannel(root.getAttribute("data-events-url"), {
      ready: refresh,
      event: function (name) {
        if (name !== "ticket.message") { scheduleRefresh(); }
      }
    }, connection);
    window.setInterval(refresh, QUEUE_REFRESH_MS);  // waiting times move on
  }

  // -- the ticket -------------------------------------------------------------------------------

  function initTicket(root) {
    var ticketId = Number(root.getAttribute("data-ticket-id"));
    var agentId = Number(root.getAttribute("data-agent-id"));
    var agentName = root.getAttribute("data-agent-name") || "Agent";
    var maxChars = Number(root.getAttribute("data-max-chars"));
    var stateUrl = root.getAttribute("data-state-url");
    var list = document.getElementById("transcript-list");
    var transcript = document.getElementById("transcript");
    var statusLine = document.getElementById("action-status");
    var composer = document.getElementById("composer");
    var textarea = document.getElementById("composer-text");
    var counter = document.getElementById("composer-count");
    var ownerHint = document.getElementById("composer-owner-hint");
    var closedHint = document.getElementById("composer-closed-hint");
    var auditRows = document.getElementById("audit-rows");
    var moved = false;

    function announce(text) { statusLine.textContent = text; }

    function scrollToEnd() { transcript.scrollTop = transcript.scrollHeight; }

    function normalise(m) {
      var note = Boolean(m.note || m.private);
      var withheld = Boolean(m.withheld || m.status === "withheld");
      var author = m.author;
      if (!author) {
        author = ROLE_LABELS[m.role] || m.role;
        if (m.role === "agent" && m.agent_id === agentId) { author = agentName; }
      }
      return {
        id: m.id, role: m.role, author: author, text: m.text, note: note, withheld: withheld,
        status: m.status, created_at: m.created_at, buttons: m.buttons || [],
        cited_article_id: m.cited_article_id || null,
        attachments: Array.isArray(m.attachments) ? m.attachments.filter(function (f) { return f && typeof f === "object"; }) : [],
        attachment_count: m.attachment_count || (Array.isArray(m.attachments) ? m.attachments.length : 0)
      };
    }

    function appendMessage(raw) {
      var m = normalise(raw);
      if (m.id !== undefined && m.id !== null && list.querySelector('li[data-message-id="' + m.id + '"]')) {
        return false;
      }
      var li = el("li", "msg msg-" + m.role + (m.note ? " msg-note" : "") + (m.withheld ? " msg-withheld" : ""));
      li.setAttribute("data-message-id", String(m.id));
      var meta = el("p", "msg-meta");
      meta.appendChild(el("span", "msg-author", m.author));
      if (m.note) { meta.appendChild(el("span", "badge badge-note", "Internal note")); }
      if (m.withheld) { meta.appendChild(el("span", "badge", "Withheld: not shown to the customer")); }
      if (m.status === "rejected" || m.status === "undelivered") {
        meta.appendChild(el("span", "badge", m.status.charAt(0).toUpperCase() + m.status.slice(1)));
      }
      var time = el("time", null, formatTime(m.created_at));
      time.setAttribute("datetime", m.created_at);
      meta.appendChild(time);
      li.appendChild(meta);
      li.appendChild(el("p", "msg-text", m.text));
      if (m.buttons.length) { li.appendChild(el("p", "msg-extra", "Offered: " + m.buttons.join(", "))); }
      if (m.cited_article_id) {
        var cited = el("p", "msg-extra", "Answered from ");
        var link = el("a", null, m.cited_article_id);
        link.href = "/articles/" + encodeURIComponent(m.cited_article_id);
        cited.appendChild(link);
        li.appendChild(cited);
      }
      if (m.attachments.length) {
        var files = el("ul", "msg-files");
        files.setAttribute("aria-label", "Attachments");
        m.attachments.forEach(function (f) {
          var item = el("li");
          var url = "/desk/attachments/" + encodeURIComponent(String(f.id));
          if (String(f.content_type || "").indexOf("image/") === 0) {
            var thumbLink = el("a");
            thumbLink.href = url;
            thumbLink.target = "_blank";
            thumbLink.rel = "noopener";
            var img = el("img", "msg-thumb");
            img.src = url;
            img.alt = String(f.filename || "attachment");
            thumbLink.appendChild(img);
            item.appendChild(thumbLink);
          }
          var link = el("a", null, String(f.filename || "attachment"));
          link.href = url;
          link.target = "_blank";
          link.rel = "noopener";
          item.appendChild(link);
          files.appendChild(item);
        });
        li.appendChild(files);
      } else if (m.attachment_count) {
        li.appendChild(el("p", "msg-extra", m.attachment_count + (m.attachment_count === 1 ? " attachment" : " attachments")));
      }
      list.appendChild(li);
      scrollToEnd();
      return true;
    }

    function setVisibility(ticket) {
      root.setAttribute("data-status", ticket.status);
      Array.prototype.forEach.call(document.querySelectorAll("[data-show-when]"), function (node) {
        var when = node.getAttribute("data-show-when");
        var show = when === "queued" ? ticket.status === "queued" : ticket.is_open;
        node.hidden = moved || !show;
      });
      if (ownerHint) { ownerHint.hidden = ticket.status !== "queued"; }
      if (closedHint) { closedHint.hidden = moved || ticket.is_open; }
    }

    function renderTicket(ticket) {
      var fallbacks = { team_name: "No team", assignee_name: "Nobody yet", resolution_note: "—" };
      Array.prototype.forEach.call(document.querySelectorAll("[data-field]"), function (node) {
        var key = node.getAttribute("data-field");
        var value = ticket[key];
        node.textContent = value === null || value === undefined || value === "" ? (fallbacks[key] || "—") : String(value);
      });
      setVisibility(ticket);
    }

    function auditDetails(details) {
      return Object.keys(details).sort().map(function (key) {
        var value = details[key];
        return key + ": " + (typeof value === "string" ? value : JSON.stringify(value));
      }).join("; ");
    }

    function renderAudit(entries) {
      while (auditRows.firstChild) { auditRows.removeChild(auditRows.firstChild); }
      entries.forEach(function (entry) {
        var tr = el("tr");
        var when = el("td");
        var time = el("time", null, formatTime(entry.at));
        time.setAttribute("datetime", entry.at);
        when.appendChild(time);
        tr.appendChild(when);
        tr.appendChild(el("td", null, entry.actor_name));
        tr.appendChild(el("td", "nowrap", entry.action));
        tr.appendChild(el("td", null, auditDetails(entry.details || {})));
        auditRows.appendChild(tr);
      });
    }

    function markMoved() {
      moved = true;
      showError("This ticket is no longer in your teams' queues.");
      setVisibility({ status: "moved", is_open: false });
    }

    function refreshState() {
      return request("GET", stateUrl).then(function (result) {
        if (result.status === 404) { markMoved(); return; }
        if (!result.ok || !result.data) { return; }
        renderTicket(result.data.ticket);
        renderAudit(result.data.audit || []);
        (result.data.transcript || []).forEach(appendMessage);
      });
    }

    function updateCounter() {
      var length = textarea.value.length;
      counter.textContent = length + " of " + maxChars + " characters" + (length > maxChars ? " (too long)" : "");
      counter.classList.toggle("over", length > maxChars);
    }

    // Forms: claim, assign, transfer, resolve, hand back, and the composer (reply / note).
    document.addEventListener("submit", function (event) {
      var form = event.target;
      if (!form.matches || !form.matches("form[data-desk-action]")) { return; }
      event.preventDefault();
      var submitter = event.submitter || form.querySelector('button[type="submit"]');
      var kind = (submitter && submitter.getAttribute("data-kind")) || form.getAttribute("data-desk-action");
      var url = (submitter && submitter.getAttribute("formaction")) || form.action;
      var fields = formFields(form);
      if ((kind === "reply" || kind === "note") && !fields.text.trim()) {
        showError("Type a message first.");
        textarea.focus();
        return;
      }
      if (submitter) { submitter.disabled = true; }
      showError("");
      var fileInput = document.getElementById("composer-file");
      var file = kind === "reply" && fileInput && fileInput.files && fileInput.files[0];
      var uploaded = file ? uploadFile(fileInput.getAttribute("data-upload-url"), file) : Promise.resolve(null);
      uploaded.then(function (upload) {
        if (upload && !upload.ok) {
          return { ok: false, status: upload.status, data: upload.data };
        }
        if (upload) { fields.attachment_ids = [upload.data.id]; }
        return request("POST", url, fields);
      }).then(function (result) {
        if (file && result.ok && fileInput) { fileInput.value = ""; }
        if (submitter) { submitter.disabled = false; }
        if (!result.ok) {
          showError(errorText(result.data));
          if (result.status === 404) { markMoved(); }
          return;
        }
        if (result.data && result.data.message) { appendMessage(result.data.message); }
        (result.data && result.data.messages || []).forEach(appendMessage);
        if (kind === "reply" || kind === "note") {
          textarea.value = "";
          updateCounter();
          textarea.focus();
        } else {
          var panel = form.closest("details");
          if (panel) { panel.open = false; }
          Array.prototype.forEach.call(form.querySelectorAll("textarea"), function (area) { area.value = ""; });
        }
        announce({
          reply: "Reply sent.", note: "Internal note added.", claim: "You claimed this ticket.",
          assign: "Ticket assigned.", transfer: "Ticket transferred.", resolve: "Ticket resolved.",
          "hand-back": "Conversation handed back to the bot."
        }[kind] || "Done.");
        if (result.data && result.data.ticket) { renderTicket(result.data.ticket); }
        refreshState();
      });
    });

    textarea.addEventListener("input", updateCounter);
    textarea.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        var send = document.getElementById("send-reply");
        if (send && !send.hidden && composer.requestSubmit) { composer.requestSubmit(send); }
      }
    });

    var cannedSelect = document.getElementById("canned-select");
    var cannedInsert = document.getElementById("canned-insert");
    if (cannedSelect && cannedInsert) {
      cannedInsert.addEventListener("click", function () {
        var option = cannedSelect.options[cannedSelect.selectedIndex];
        if (option) { insertAtCursor(textarea, option.getAttribute("data-body") || ""); }
      });
    }

    // Suggested articles: loaded after the page, so a slow or missing index never holds it up.
    var suggestions = document.getElementById("suggestions");
    var suggestionsStatus = document.getElementById("suggestions-status");
    var suggestionsList = document.getElementById("suggestions-list");
    request("GET", root.getAttribute("data-suggestions-url")).then(function (result) {
      suggestions.setAttribute("aria-busy", "false");
      if (!result.ok || !result.data || !result.data.available) {
        suggestionsStatus.textContent = "Suggestions unavailable.";
        return;
      }
      var articles = result.data.articles;
      suggestionsStatus.textContent = articles.length ? "" : "No matching articles.";
      suggestionsStatus.hidden = articles.length > 0;
      articles.forEach(function (article) {
        var li = el("li", "suggestion");
        var title = el("h3");
        var link = el("a", null, article.title);
        link.href = article.url;
        link.target = "_blank";
        link.rel = "noopener";
        title.appendChild(link);
        li.appendChild(title);
        li.appendChild(el("p", null, article.summary));
        var insert = el("button", "secondary", "Insert into reply");
        insert.type = "button";
        insert.setAttribute("aria-label", "Insert into reply: " + article.title);
        insert.addEventListener("click", function () { insertAtCursor(textarea, article.insert_text); });
        li.appendChild(insert);
        suggestionsList.appendChild(li);
      });
    });

    openLiveChannel(root.getAttribute("data-events-url"), {
      ready: refreshState,
      event: function (name, data) {
        if (data.ticket_id !== ticketId) { return; }
        if (name === "ticket.removed") { markMoved(); return; }
        if (name === "ticket.message") {
          if (data.message) { appendMessage(data.message); }  // the log region announces it
          return;
        }
        refreshState();
      }
    }, null);

    updateCounter();
    scrollToEnd();
  }

  var queueRoot = document.getElementById("desk-queue");
  if (queueRoot) { initQueue(queueRoot); }
  var ticketRoot = document.getElementById("desk-ticket");
  if (ticketRoot) { initTicket(ticketRoot); }
}());
