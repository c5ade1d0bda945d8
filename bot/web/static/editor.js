/* Knowledge editor pages (bot/web/routes/editor.py). No inline scripts (the CSP forbids
 * them); server HTML fragments are rendered by Jinja with autoescape, and everything else
 * is put on the page with textContent.
 *
 * The edit form is never lost: every change goes to localStorage at once and to the
 * server's working copy a moment later (while signed in). Saving uses fetch, so a session
 * that expired mid-edit answers 401 and the page says so, keeping the text; after signing
 * in again the kept draft is restored into the form. */
(function () {
  "use strict";

  var SIGNED_OUT = "You were signed out; your draft is kept — sign in again.";
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";

  function post(url, body, isJson) {
    var headers = { "Accept": "application/json", "X-CSRF-Token": csrf };
    if (isJson) headers["Content-Type"] = "application/json";
    return fetch(url, {
      method: "POST",
      headers: headers,
      body: isJson ? JSON.stringify(body) : body,
      credentials: "same-origin",
      redirect: "manual"
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        return { status: response.status, data: data || {} };
      });
    });
  }

  function errorText(result) {
    if (result.status === 401 || result.status === 0) return SIGNED_OUT;
    return result.data.error || result.data.detail || "That didn't work; try again.";
  }

  /* Confirmation on destructive or long forms (retire, restore, rollback, tune), also on
     forms htmx swaps in later (the tune box). Publish asks in its own handler below. */
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || form.id === "publish-form") return;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });

  /* The tune box is swapped in anew every 2 s while a tune runs: announce only a change
     of its status (queued, running, succeeded, ...), not every poll. */
  var tuneAnnouncer = document.getElementById("tune-announcer");
  function tuneState() {
    var job = document.querySelector("#tune .tune-job");
    return job ? job.getAttribute("data-job") + ":" + job.getAttribute("data-status") : "";
  }
  var lastTuneState = tuneState();
  document.body.addEventListener("htmx:afterSwap", function () {
    var state = tuneState();
    if (!tuneAnnouncer || state === lastTuneState) return;
    lastTuneState = state;
    var job = document.querySelector("#tune .tune-job p");
    tuneAnnouncer.textContent = job ? job.textContent.replace(/\s+/g, " ").trim() : "";
  });

  /* Publish: progress while the build runs, then the result. */
  var publishForm = document.getElementById("publish-form");
  var publisherNote = document.getElementById("publisher-state");
  function checkPublisher() {
    fetch("/editor/api/publisher", { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (data) {
        if (data.ready) { publisherNote.textContent = ""; return; }
        publisherNote.textContent = "Loading the language model for publishing (once after a restart)…";
        window.setTimeout(checkPublisher, 2000);
      })
      .catch(function () { /* signed out or offline: the button says so when clicked */ });
  }
  if (publisherNote) checkPublisher();
  if (publishForm) {
    var publishStatus = document.getElementById("publish-status");
    var publishButton = document.getElementById("publish-button");
    publishForm.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!window.confirm(publishForm.getAttribute("data-confirm"))) return;
      publishButton.disabled = true;
      var started = Date.now();
      publishStatus.className = "muted";
      publishStatus.textContent = "Publishing… validating and building the index";
      var timer = window.setInterval(function () {
        var seconds = Math.round((Date.now() - started) / 1000);
        publishStatus.textContent = "Publishing… " + seconds + " s (the first publish after a restart loads the model)";
      }, 1000);
      post("/editor/publish", null, false).then(function (result) {
        window.clearInterval(timer);
        publishButton.disabled = false;
        if (result.status === 200) {
          publishStatus.className = "ok";
          publishStatus.textContent = result.data.message + " (" + result.data.seconds + " s, build " + result.data.build + ")";
          window.setTimeout(function () { window.location.reload(); }, 2500);
        } else {
          publishStatus.className = "error";
          publishStatus.textContent = errorText(result);
        }
      }).catch(function () {
        window.clearInterval(timer);
        publishButton.disabled = false;
        publishStatus.className = "error";
        publishStatus.textContent = "The bot service didn't answer; check your connection and try again.";
      });
    });
  }

  /* The article form. */
  var form = document.getElementById("article-form");
  if (!form) return;
  var key = form.getAttribute("data-key");
  var storageKey = "concierge-editor:" + key;
  var fieldNames = ["id", "title", "audience", "owner", "questions", "tags", "language", "body", "note", "base_number"];
  var statusLine = document.getElementById("save-status");
  var formError = document.getElementById("form-error");
  var problemList = document.getElementById("form-problems");
  var autosaveTimer = null;
  var previewTimer = null;
  var previewSeq = 0;

  function fields() {
    var values = {};
    fieldNames.forEach(function (name) {
      var input = form.elements.namedItem(name);
      if (input) values[name] = input.value;
    });
    return values;
  }

  function fill(values) {
    fieldNames.forEach(function (name) {
      var input = form.elements.namedItem(name);
      if (!input || values[name] === undefined || values[name] === null) return;
      if (name === "id" && input.readOnly) return;
      input.value = values[name];
    });
  }

  function differs(values) {
    var current = fields();
    return ["title", "audience", "owner", "questions", "tags", "body", "id"].some(function (name) {
      return values[name] !== undefined && values[name] !== null && (values[name] || "") !== (current[name] || "");
    });
  }

  function keepLocally() {
    try {
      window.localStorage.setItem(storageKey, JSON.stringify({ fields: fields(), at: new Date().toISOString() }));
    } catch (ignored) { /* private mode or full: the server copy still works */ }
  }

  function readLocal() {
    try {
      var raw = window.localStorage.getItem(storageKey);
      return raw ? JSON.parse(raw) : null;
    } catch (ignored) { return null; }
  }

  function forgetLocal() {
    try { window.localStorage.removeItem(storageKey); } catch (ignored) { /* nothing kept */ }
  }

  function showSignedOut() {
    formError.textContent = "";
    var text = document.createTextNode(SIGNED_OUT + " ");
    var link = document.createElement("a");
    link.href = form.getAttribute("data-sign-in");
    link.textContent = "Sign in";
    formError.appendChild(text);
    formError.appendChild(link);
  }

  function showProblems(result) {
    problemList.textContent = "";
    if (result.status === 401) { showSignedOut(); return; }
    formError.textContent = errorText(result);
    (result.data.problems || []).forEach(function (problem) {
      var item = document.createElement("li");
      item.textContent = (problem.field ? problem.field + ": " : "") + problem.message;
      problemList.appendChild(item);
    });
  }

  function autosave() {
    var body = fields();
    body.key = key;
    post("/editor/api/working-copy", body, true).then(function (result) {
      if (result.status === 200) {
        statusLine.textContent = "Draft kept " + new Date().toLocaleTimeString();
      } else if (result.status === 401) {
        showSignedOut();
        statusLine.textContent = "Draft kept in this browser";
      } else {
        statusLine.textContent = errorText(result);
      }
    }).catch(function () { statusLine.textContent = "Draft kept in this browser"; });
  }

  function testQuestions() {
    var box = document.getElementById("test-questions");
    return box ? box.value.split("\n").filter(function (line) { return line.trim(); }) : [];
  }

  function preview() {
    var body = fields();
    if (!body.id && key === "new") body.id = "";
    body.test_question = testQuestions();
    var segment = document.getElementById("preview-segment");
    body.segment = segment ? segment.value : "";
    var seq = ++previewSeq;
    post("/editor/api/preview", body, true).then(function (result) {
      if (seq !== previewSeq) return;
      var answers = document.getElementById("preview-answers");
      var page = document.getElementById("preview-page");
      if (result.status !== 200) {
        answers.textContent = errorText(result);
        if (result.status === 401) showSignedOut();
        return;
      }
      if (!result.data.ok) {
        answers.textContent = "Not previewed yet: " + (result.data.problems || []).map(function (p) {
          return (p.field ? p.field + " " : "") + p.message;
        }).join("; ");
        return;
      }
      page.innerHTML = result.data.page_html;      /* server-rendered, escaped */
      answers.innerHTML = result.data.answers_html; /* server-rendered, escaped */
    }).catch(function () { /* offline: the preview waits for the next change */ });
  }

  function changed() {
    keepLocally();
    window.clearTimeout(autosaveTimer);
    autosaveTimer = window.setTimeout(autosave, 1500);
    window.clearTimeout(previewTimer);
    previewTimer = window.setTimeout(preview, 500);
  }

  form.addEventListener("input", changed);
  ["test-questions", "preview-segment"].forEach(function (id) {
    var element = document.getElementById(id);
    if (element) element.addEventListener("input", function () {
      window.clearTimeout(previewTimer);
      previewTimer = window.setTimeout(preview, 500);
    });
  });

  /* Suggest an id from the title on new articles. */
  var idInput = form.elements.namedItem("id");
  var titleInput = form.elements.namedItem("title");
  if (key === "new" && idInput && titleInput) {
    var idTouched = !!idInput.value;
    idInput.addEventListener("input", function () { idTouched = true; });
    titleInput.addEventListener("input", function () {
      if (idTouched) return;
      idInput.value = titleInput.value.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 80).replace(/-+$/, "");
    });
  }

  var saving = false;
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (saving) return;  /* a double click saves once */
    saving = true;
    keepLocally();
    var button = document.getElementById("save-button");
    button.disabled = true;
    statusLine.textContent = "Saving…";
    formError.textContent = "";
    problemList.textContent = "";
    post(form.getAttribute("action"), fields(), true).then(function (result) {
      saving = false;
      button.disabled = false;
      if (result.status === 200 && result.data.location) {
        forgetLocal();
        statusLine.textContent = "Saved revision " + result.data.revision;
        window.location.assign(result.data.location);
        return;
      }
      statusLine.textContent = result.status === 401 ? "Not saved: signed out (draft kept)" : "Not saved";
      showProblems(result);
    }).catch(function () {
      saving = false;
      button.disabled = false;
      statusLine.textContent = "Not saved";
      formError.textContent = "The bot service didn't answer; your draft is kept in this browser. Try again in a moment.";
    });
  });

  /* Restore a kept draft: this browser's or the server's working copy, the newer one. */
  function restoreKept() {
    if (document.getElementById("added-notice")) return;
    var candidates = [];
    var local = readLocal();
    if (local && local.fields) candidates.push({ fields: local.fields, at: local.at, where: "this browser" });
    var serverNode = document.getElementById("working-copy");
    var server = serverNode ? JSON.parse(serverNode.textContent || "null") : null;
    if (server && server.data) {
      var serverFields = server.data;
      serverFields.base_number = server.base_revision === null ? "" : String(server.base_revision);
      candidates.push({ fields: serverFields, at: server.updated_at, where: "the server" });
    }
    candidates = candidates.filter(function (c) { return differs(c.fields); });
    if (!candidates.length) return;
    candidates.sort(function (a, b) { return (b.at || "").localeCompare(a.at || ""); });
    var kept = candidates[0];
    var original = fields();
    fill(kept.fields);
    var notice = document.getElementById("restore-notice");
    document.getElementById("restore-text").textContent =
      "Restored your unsaved draft from " + new Date(kept.at).toLocaleString() + " (kept in " + kept.where + "). Save it to keep it as a revision.";
    document.getElementById("restore-button").hidden = true;
    notice.hidden = false;
    document.getElementById("discard-button").addEventListener("click", function () {
      fill(original);
      forgetLocal();
      post("/editor/api/working-copy/discard", { key: key }, true);
      notice.hidden = true;
      preview();
    });
  }

  restoreKept();
  preview();

  /* Start from a Markdown file (new articles). */
  var importButton = document.getElementById("import-button");
  if (importButton) {
    importButton.addEventListener("click", function () {
      var input = document.getElementById("f-file");
      if (!input.files || !input.files.length) { formError.textContent = "Choose a file first."; return; }
      var data = new FormData();
      data.append("file", input.files[0]);
      post("/editor/api/import-file", data, false).then(function (result) {
        if (result.status !== 200) { showProblems(result); return; }
        formError.textContent = "";
        problemList.textContent = "";
        fill(result.data.fields);
        changed();
      });
    });
  }
})();
