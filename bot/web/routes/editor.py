"""The knowledge-base editor in the browser: list, edit with preview, review, history, publish.

Routes (every one needs a complete desk session and the role editor, lead or admin;
agents get 403; POSTs need the session's CSRF token and a same-site Origin):

    GET  /editor/articles                              list, search (?q=) and filters
    GET  /editor/articles/new?title=&question=...&tag= create form, prefilled
    POST /editor/articles                              create (revision 1)
    GET  /editor/articles/{id}/edit?add_question=...   edit form (questions appended)
    POST /editor/articles/{id}                         save revision n+1
    GET  /editor/articles/{id}/history?a=N&b=M         revisions, author, time, diff
    POST /editor/articles/{id}/revisions/{n}/submit    ask for review
    POST /editor/articles/{id}/revisions/{n}/review    approve=1|0, comment (leads)
    POST /editor/articles/{id}/revisions/{n}/rollback  new revision with n's content
    POST /editor/articles/{id}/retire | /restore       leave / rejoin the live index
    GET  /editor/review                                the review queue (leads)
    GET  /editor/api/publisher                         {"ready": model loaded} (warms it)
    POST /editor/publish                               build and swap the live index
    POST /editor/api/preview                           rendered page + test answers (JSON)
    POST /editor/api/working-copy                      autosave of the unsaved form
    POST /editor/api/import-file                       a Markdown file → form fields
    GET  /editor/tune                                  the tune box (HTML part; JSON too)
    POST /editor/tune                                  start a tune job (leads, admins)
    POST /editor/tune/{job}/cancel                     stop it after its current step

Pages post forms; ``editor.js`` sends the same forms with ``Accept: application/json``
and gets JSON back (``{"error": ..., "problems": [...]}`` on failure). A request whose
session has expired gets 401 ``{"error": SIGNED_OUT}`` instead of a redirect, so the
page keeps the text (it is also in ``localStorage`` and the server's working copy) and
restores it after the editor signs in again.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from bot.agents.models import Agent, AgentSession
from bot.config import Settings
from bot.editor import service, tune_jobs
from bot.editor.diff import diff_lines
from bot.editor.errors import ArticleNotFoundError, EditorError, InvalidArticleError
from bot.editor.models import KbRevision
from bot.editor.preview import MAX_TEST_QUESTIONS, PreviewIndex, preview_answers
from bot.editor.publishing import PublishTarget, publish, recent_publications
from bot.editor.service import EDITOR_ROLES, REVIEWER_ROLES, Actor
from bot.web.auth import CSRF_FIELD, SignInRequiredError, load_session, verify_csrf
from bot.web.deps import SessionDep, SettingsDep, TemplatesDep
from bot.web.routes.articles import render_markdown
from bot.web.routes.desk import format_time
from bot.web.vendor import vendor_url
from knowledge.articles import (
    MAX_BODY_CHARS,
    MAX_FILE_BYTES,
    MAX_QUESTION_CHARS,
    MAX_TITLE_CHARS,
)
from knowledge.tuning import tune_drift

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/editor", tags=["editor"])
legacy_router = APIRouter(tags=["editor"])

SIGNED_OUT = "You were signed out; your draft is kept — sign in again."
FORBIDDEN = "Your role can't use the article editor."
BODY_BYTES_PER_CHAR = 12  # JSON/form escaping: a character may become 12 bytes
BODY_SLACK_BYTES = 64 * 1024
MAX_PREFILLED_TAGS = 5  # tags a link may prefill in the new-article form
STATE_FILTERS = (
    ("", "Any state"),
    ("pending", "Waiting to be published"),
    ("live", "Live"),
    ("draft", "Draft"),
    ("in_review", "In review"),
    ("approved", "Approved"),
    ("rejected", "Rejected"),
    ("published", "Published"),
    ("retired", "Retired"),
)
_warm_lock = threading.Lock()


# -- auth ------------------------------------------------------------------------------------


def wants_json(request: Request) -> bool:
    """Whether the caller is the page's script (it asks for JSON) rather than a form post."""
    return "application/json" in request.headers.get("accept", "") or request.url.path.startswith(
        "/editor/api/"
    )


async def editor_session(request: Request) -> AgentSession:
    """The signed-in editor's session; 401 JSON for scripts, the sign-in page for browsers.

    Raises:
        HTTPException: 401 (script, signed out) or 403 (a role without the editor).
        SignInRequiredError: A browser without a session (redirected to sign in).
    """
    row = await load_session(request)
    if row is None or row.second_factor_pending:
        if wants_json(request):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=SIGNED_OUT)
        next_path = request.url.path
        if request.url.query:
            next_path = f"{next_path}?{request.url.query}"
        raise SignInRequiredError(wants_html=True, next_path=next_path)
    if row.agent.role not in EDITOR_ROLES:
        logger.warning("agent=%s role=%s refused the editor", row.agent_id, row.agent.role)
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=FORBIDDEN)
    return row


EditorSessionDep = Annotated[AgentSession, Depends(editor_session)]


async def check_body_size(request: Request) -> None:
    """Refuse a body far larger than the longest article before anything parses it.

    Raises:
        HTTPException: 413 in one sentence.
    """
    declared = request.headers.get("content-length", "")
    limit = MAX_BODY_CHARS * BODY_BYTES_PER_CHAR + BODY_SLACK_BYTES
    if declared.isdigit() and int(declared) > limit:
        logger.warning("refused a %s-byte body on %s", declared, request.url.path)
        raise HTTPException(
            413,
            detail=f"That is far too long; an article may hold {MAX_BODY_CHARS:,} characters.",
        )


async def editor_csrf(
    request: Request, row: EditorSessionDep, _size: Annotated[None, Depends(check_body_size)]
) -> AgentSession:
    """Signed in, allowed, small enough, and carrying the session's CSRF token."""
    await verify_csrf(request, row)
    return row


EditorPostDep = Annotated[AgentSession, Depends(editor_csrf)]


def _sessions(request: Request) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = request.app.state.session_factory
    return factory


def _context(row: AgentSession, **values: Any) -> dict[str, Any]:
    agent: Agent = row.agent
    return {
        "agent": agent,
        "csrf_token": row.csrf_token,
        "when": format_time,
        "is_lead": agent.role in REVIEWER_ROLES,
        "htmx_js": vendor_url("htmx.min.js"),
        **values,
    }


async def _fields(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            data = await request.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise InvalidArticleError("Send the fields as a JSON object.")
        return {k: v for k, v in data.items() if k != CSRF_FIELD}
    form = await request.form()
    fields: dict[str, Any] = {}
    for key in form:
        if key == CSRF_FIELD:
            continue
        values = [value for value in form.getlist(key) if isinstance(value, str)]
        fields[key] = values if key == "test_question" else (values[0] if values else "")
    return fields


def _done(request: Request, location: str, payload: dict[str, Any]) -> Response:
    if wants_json(request):
        return JSONResponse({**payload, "location": location})
    return RedirectResponse(location, status_code=status.HTTP_303_SEE_OTHER)


async def editor_error(request: Request, exc: Exception) -> Response:
    """Turn an editor error into JSON (scripts) or a small page (form posts)."""
    assert isinstance(exc, EditorError)
    logger.info(
        "editor refused %s %s article=%s: %s",
        request.method,
        request.url.path,
        exc.article_id,
        exc.message,
    )
    if wants_json(request) or request.method != "GET":
        body = {
            "error": exc.message,
            "problems": [{"field": field, "message": message} for field, message in exc.problems],
        }
        if not wants_json(request):
            return HTMLResponse(
                f"<!doctype html><title>Not saved</title><p>{_escape(exc.message)}</p>"
                "<p>Go back to keep editing, or "
                '<a href="/editor/articles">open the articles</a>.</p>',
                status_code=exc.status_code,
            )
        return JSONResponse(body, status_code=exc.status_code)
    templates = request.app.state.templates
    return templates.TemplateResponse(
        request, "not_found.html", {"message": exc.message}, status_code=exc.status_code
    )


def _escape(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))


def register_editor(app: FastAPI) -> None:
    """Add the editor's routes and error handling to the bot service."""
    app.include_router(router)
    app.include_router(legacy_router)
    app.add_exception_handler(EditorError, editor_error)


# -- shared state ----------------------------------------------------------------------------


def _preview_index(request: Request, settings: Settings) -> PreviewIndex:
    state = request.app.state
    existing: PreviewIndex | None = getattr(state, "editor_preview", None)
    if existing is None:
        with _warm_lock:
            existing = getattr(state, "editor_preview", None)
            if existing is None:
                existing = PreviewIndex(settings.index_dir, getattr(state, "editor_encoder", None))
                state.editor_preview = existing
    return existing


def publish_target(request: Request, settings: Settings) -> PublishTarget:
    """Where this process publishes, and with which document encoder."""
    from knowledge.onnx_encoder import EXPORT_DIRNAME

    injected = getattr(request.app.state, "editor_encoder", None)

    def encoder() -> Any:
        if injected is not None:
            return injected
        from knowledge.encoder import default_encoder

        return default_encoder()

    return PublishTarget(settings.index_dir, settings.models_dir / EXPORT_DIRNAME, encoder)


def warm_encoder(request: Request) -> None:
    """Load the document encoder in the background once, so the first publish is quick.

    Only when an editor opens a form (the bot service otherwise never loads torch).
    """
    state = request.app.state
    if getattr(state, "editor_encoder", None) is not None:
        return
    with _warm_lock:
        if getattr(state, "editor_encoder_warming", False):
            return
        state.editor_encoder_warming = True

    def load() -> None:
        try:
            from knowledge.encoder import default_encoder

            default_encoder().encode(["warm up"])
            logger.info("editor: document encoder loaded for publishing")
        except Exception:  # a missing model shows up again, clearly, on publish
            logger.exception("editor: could not load the document encoder")

    threading.Thread(target=load, name="editor-encoder-warm-up", daemon=True).start()


def _policy(settings: Settings) -> Any:
    return settings.kb_answer_policy()


# -- pages -----------------------------------------------------------------------------------


@legacy_router.get("/desk/articles", include_in_schema=False)
async def desk_articles() -> RedirectResponse:
    """The desk's old Articles address (sign-in lands editors here)."""
    return RedirectResponse("/editor/articles", status_code=status.HTTP_303_SEE_OTHER)


@router.get("", include_in_schema=False)
async def editor_home() -> RedirectResponse:
    """The editor starts at the article list."""
    return RedirectResponse("/editor/articles", status_code=status.HTTP_303_SEE_OTHER)


@router.get("/articles", response_class=HTMLResponse)
async def article_list(
    request: Request,
    row: EditorSessionDep,
    session: SessionDep,
    settings: SettingsDep,
    templates: TemplatesDep,
    q: Annotated[str, Query(max_length=200)] = "",
    audience: Annotated[str, Query(max_length=10)] = "",
    state: Annotated[str, Query(max_length=20)] = "",
) -> HTMLResponse:
    """The articles, searchable by title, id and text, filtered by audience and state."""
    warm_encoder(request)
    review = settings.kb_require_review
    articles = service.list_articles(
        session, require_review=review, query=q, audience=audience, state=state
    )
    pending = service.pending_changes(session, require_review=review)
    return templates.TemplateResponse(
        request,
        "editor_list.html",
        _context(
            row,
            articles=articles,
            pending=pending,
            q=q,
            audience=audience,
            state=state,
            states=STATE_FILTERS,
            audiences=("b2c", "b2b", "all"),
            require_review=review,
            publications=recent_publications(session, 5),
            in_review=len(service.review_queue(session)),
            **_tune_context(session, settings),
        ),
    )


def _blank_form(title: str = "", questions: list[str] | None = None) -> dict[str, Any]:
    return {
        "id": "",
        "title": title,
        "audience": "all",
        "owner": "support-team",
        "questions": "\n".join(questions or []),
        "tags": "",
        "language": "en",
        "body": "",
        "note": "",
    }


def _form_from_content(content: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": content["id"],
        "title": content["title"],
        "audience": content["audience"],
        "owner": content["owner"],
        "questions": "\n".join(content.get("questions", [])),
        "tags": ", ".join(content.get("tags", [])),
        "language": content.get("language", "en"),
        "body": content["body"],
        "note": "",
    }


def _clean_params(values: list[str], limit: int = 20, chars: int = MAX_QUESTION_CHARS) -> list[str]:
    cleaned = []
    for value in values[:limit]:
        text = " ".join(value.split())[:chars]
        if text and text not in cleaned:
            cleaned.append(text)
    return cleaned


@router.get("/articles/new", response_class=HTMLResponse)
async def new_article(
    request: Request,
    row: EditorSessionDep,
    session: SessionDep,
    templates: TemplatesDep,
    title: Annotated[str, Query(max_length=MAX_TITLE_CHARS)] = "",
    question: Annotated[list[str] | None, Query()] = None,
    tag: Annotated[list[str] | None, Query()] = None,
) -> HTMLResponse:
    """The create form, prefilled from ``title``, ``question`` and ``tag`` (from content gaps)."""
    warm_encoder(request)
    questions = _clean_params(question or [])
    form = _blank_form(" ".join(title.split()), questions)
    form["tags"] = ", ".join(_clean_params(tag or [], limit=MAX_PREFILLED_TAGS, chars=100))
    working = service.get_working_copy(session, agent_id=row.agent_id, key="new")
    return templates.TemplateResponse(
        request,
        "editor_form.html",
        _context(
            row,
            form=form,
            article_id=None,
            base_number=None,
            latest=None,
            working=_working_view(working),
            test_questions=questions or ([form["title"]] if form["title"] else []),
            max_test_questions=MAX_TEST_QUESTIONS,
            added_questions=[],
            limits=_limits(),
        ),
    )


def _limits() -> dict[str, int]:
    return {
        "title": MAX_TITLE_CHARS,
        "body": MAX_BODY_CHARS,
        "id": service.MAX_ID_CHARS,
        "question": MAX_QUESTION_CHARS,
    }


def _working_view(working: Any) -> dict[str, Any] | None:
    if working is None:
        return None
    return {
        "data": working.data,
        "base_revision": working.base_revision,
        "updated_at": working.updated_at.isoformat(),
    }


@router.get("/articles/{article_id}/edit", response_class=HTMLResponse)
async def edit_article(
    article_id: str,
    request: Request,
    row: EditorSessionDep,
    session: SessionDep,
    settings: SettingsDep,
    templates: TemplatesDep,
    add_question: Annotated[list[str] | None, Query()] = None,
) -> HTMLResponse:
    """The edit form on the newest revision, with ``add_question`` phrasings appended."""
    warm_encoder(request)
    article = service.get_article(session, article_id)
    latest = service.latest_revision(session, article_id)
    form = _form_from_content(latest.content)
    existing = set(latest.content.get("questions", []))
    added = [q for q in _clean_params(add_question or []) if q not in existing]
    if added:
        form["questions"] = "\n".join([*latest.content.get("questions", []), *added])
    working = service.get_working_copy(session, agent_id=row.agent_id, key=article_id)
    return templates.TemplateResponse(
        request,
        "editor_form.html",
        _context(
            row,
            form=form,
            article_id=article_id,
            article=article,
            base_number=latest.number,
            latest=latest,
            working=None if added else _working_view(working),
            test_questions=[latest.content["title"], *latest.content.get("questions", [])][
                :MAX_TEST_QUESTIONS
            ],
            max_test_questions=MAX_TEST_QUESTIONS,
            added_questions=added,
            limits=_limits(),
            require_review=settings.kb_require_review,
        ),
    )


@router.post("/articles")
async def create_article(request: Request, row: EditorPostDep, session: SessionDep) -> Response:
    """Create an article (revision 1) from the form."""
    fields = await _fields(request)
    content = service.content_from_fields(fields)
    revision = await anyio.to_thread.run_sync(
        lambda: service.create_article(
            session,
            content=content,
            actor=Actor.for_agent(row.agent),
            note=str(fields.get("note", "")),
        )
    )
    return _done(
        request,
        f"/editor/articles/{revision.article_id}/edit?saved={revision.number}",
        {"article_id": revision.article_id, "revision": revision.number, "state": revision.state},
    )


@router.post("/articles/{article_id}")
async def save_article(
    article_id: str, request: Request, row: EditorPostDep, session: SessionDep
) -> Response:
    """Save a new revision of an article."""
    fields = await _fields(request)
    content = service.content_from_fields(fields)
    base = str(fields.get("base_number", "")).strip()
    revision = await anyio.to_thread.run_sync(
        lambda: service.save_revision(
            session,
            article_id=article_id,
            content=content,
            actor=Actor.for_agent(row.agent),
            base_number=int(base) if base.isdigit() else None,
            note=str(fields.get("note", "")),
        )
    )
    return _done(
        request,
        f"/editor/articles/{article_id}/edit?saved={revision.number}",
        {"article_id": article_id, "revision": revision.number, "state": revision.state},
    )


@router.get("/articles/{article_id}/history", response_class=HTMLResponse)
async def article_history(
    article_id: str,
    request: Request,
    row: EditorSessionDep,
    session: SessionDep,
    settings: SettingsDep,
    templates: TemplatesDep,
    a: int | None = None,
    b: int | None = None,
) -> HTMLResponse:
    """Every revision with author, time and state, and the diff between two of them."""
    article = service.get_article(session, article_id)
    revisions = service.revisions_of(session, article_id)
    by_number = {revision.number: revision for revision in revisions}
    newer = b if b is not None else revisions[0].number
    older = a if a is not None else (newer - 1 if newer > 1 else newer)
    if older not in by_number or newer not in by_number:
        raise ArticleNotFoundError(
            f"Article {article_id} has no revision {older if older not in by_number else newer}.",
            article_id=article_id,
        )
    diff = diff_lines(by_number[older].content, by_number[newer].content)
    shown = by_number[newer]
    return templates.TemplateResponse(
        request,
        "editor_history.html",
        _context(
            row,
            article=article,
            article_id=article_id,
            revisions=revisions,
            older=older,
            newer=newer,
            diff=diff,
            shown=shown,
            shown_html=render_markdown(shown.content["body"]),
            require_review=settings.kb_require_review,
            agent_id=row.agent_id,
        ),
    )


def _revision_number(number: str) -> int:
    if not number.isdigit() or len(number) > 9:
        raise ArticleNotFoundError("There is no such revision.")
    return int(number)


@router.post("/articles/{article_id}/revisions/{number}/submit")
async def submit_revision(
    article_id: str, number: str, request: Request, row: EditorPostDep, session: SessionDep
) -> Response:
    """Ask a lead to review a draft."""
    revision = service.submit_for_review(
        session,
        article_id=article_id,
        number=_revision_number(number),
        actor=Actor.for_agent(row.agent),
    )
    return _done(
        request,
        f"/editor/articles/{article_id}/history",
        {"revision": revision.number, "state": revision.state},
    )


@router.post("/articles/{article_id}/revisions/{number}/review")
async def review_revision(
    article_id: str, number: str, request: Request, row: EditorPostDep, session: SessionDep
) -> Response:
    """Approve (``approve=1``) or reject (``approve=0`` with a comment) a revision."""
    fields = await _fields(request)
    approve = str(fields.get("approve", "")).strip().lower() in ("1", "true", "yes", "approve")
    revision = service.review_revision(
        session,
        article_id=article_id,
        number=_revision_number(number),
        actor=Actor.for_agent(row.agent),
        approve=approve,
        comment=str(fields.get("comment", "")),
    )
    return _done(request, "/editor/review", {"revision": revision.number, "state": revision.state})


@router.post("/articles/{article_id}/revisions/{number}/rollback")
async def rollback_revision(
    article_id: str, number: str, request: Request, row: EditorPostDep, session: SessionDep
) -> Response:
    """Create a new revision with an earlier revision's content."""
    revision = service.rollback(
        session,
        article_id=article_id,
        number=_revision_number(number),
        actor=Actor.for_agent(row.agent),
    )
    return _done(
        request,
        f"/editor/articles/{article_id}/history",
        {"revision": revision.number, "state": revision.state},
    )


@router.post("/articles/{article_id}/retire")
async def retire_article(
    article_id: str, request: Request, row: EditorPostDep, session: SessionDep
) -> Response:
    """Take an article out of the live index on the next publish."""
    service.set_retired(
        session, article_id=article_id, actor=Actor.for_agent(row.agent), retired=True
    )
    return _done(request, f"/editor/articles/{article_id}/history", {"retired": True})


@router.post("/articles/{article_id}/restore")
async def restore_article(
    article_id: str, request: Request, row: EditorPostDep, session: SessionDep
) -> Response:
    """Put a retired article back on the next publish."""
    service.set_retired(
        session, article_id=article_id, actor=Actor.for_agent(row.agent), retired=False
    )
    return _done(request, f"/editor/articles/{article_id}/history", {"retired": False})


@router.get("/review", response_class=HTMLResponse)
async def review_page(
    request: Request, row: EditorSessionDep, session: SessionDep, templates: TemplatesDep
) -> HTMLResponse:
    """Revisions waiting for a lead, each with its diff against the published revision."""
    queue = []
    for revision in service.review_queue(session):
        article = service.get_article(session, revision.article_id)
        base: KbRevision | None = (
            session.get(KbRevision, article.published_revision_id)
            if article.published_revision_id
            else None
        )
        queue.append(
            {
                "revision": revision,
                "base": base,
                "diff": diff_lines(base.content if base else {}, revision.content),
            }
        )
    return templates.TemplateResponse(
        request, "editor_review.html", _context(row, queue=queue, agent_id=row.agent_id)
    )


@router.post("/publish")
async def publish_now(request: Request, row: EditorPostDep, settings: SettingsDep) -> Response:
    """Build the live set and swap it in; answers when the new build is live."""
    target = publish_target(request, settings)
    factory = _sessions(request)
    result = await anyio.to_thread.run_sync(
        lambda: publish(
            factory,
            target,
            actor=Actor.for_agent(row.agent),
            require_review=settings.kb_require_review,
        )
    )
    message = (
        "Nothing had changed; the live articles are already up to date."
        if result.skipped
        else f"Published {len(result.changes)} change(s); the bot answers with them within "
        "a few seconds."
    )
    return _done(
        request,
        "/editor/articles?" + urlencode({"published": result.publication_id}),
        {
            "publication": result.publication_id,
            "build": result.build_id,
            "skipped": result.skipped,
            "articles": result.articles,
            "changes": [{"article_id": a, "kind": k} for a, k in result.changes],
            "seconds": round(result.seconds, 2),
            "encoded": result.encoded,
            "message": message,
        },
    )


# -- script API ------------------------------------------------------------------------------


def publisher_ready(request: Request) -> bool:
    """Whether this process has the document encoder loaded (publishing won't wait for it)."""
    if getattr(request.app.state, "editor_encoder", None) is not None:
        return True
    from knowledge.encoder import default_encoder

    return bool(getattr(default_encoder(), "loaded", False))


@router.get("/api/publisher")
async def publisher_status(request: Request, row: EditorSessionDep) -> JSONResponse:
    """``{"ready": bool}``: whether a publish from this replica starts building at once."""
    warm_encoder(request)
    return JSONResponse({"ready": publisher_ready(request)})


@router.post("/api/preview")
async def preview(
    request: Request,
    row: EditorPostDep,
    settings: SettingsDep,
    templates: TemplatesDep,
) -> JSONResponse:
    """The draft rendered as the article page, and the bot's answers to the test questions."""
    fields = await _fields(request)
    content = service.content_from_fields(fields)
    if not content["id"]:
        content["id"] = "draft-article"
    questions = fields.get("test_question", [])
    if isinstance(questions, str):
        questions = questions.split("\n")
    questions = [q for q in questions if isinstance(q, str)][:MAX_TEST_QUESTIONS]
    segment = "b2b" if fields.get("segment") == "b2b" else None
    try:
        draft = service.validate_content(content)
    except InvalidArticleError as exc:
        return JSONResponse(
            {
                "ok": False,
                "error": exc.message,
                "problems": [{"field": f, "message": m} for f, m in exc.problems],
                "page_html": "",
                "answers_html": "",
            }
        )
    index = _preview_index(request, settings)
    answers: list[Any] | None
    try:
        answers = await anyio.to_thread.run_sync(
            lambda: preview_answers(
                index, draft, list(questions), policy=_policy(settings), segment=segment
            )
        )
        unavailable = ""
    except Exception as exc:  # the preview never breaks the form
        logger.warning("editor preview unavailable: %s: %s", type(exc).__name__, exc)
        answers, unavailable = None, "The answer preview is unavailable: no live index yet."
    page_html = templates.get_template("editor_preview.html").render(
        article=draft, body_html=render_markdown(draft.body), answers=answers, part="page"
    )
    answers_html = templates.get_template("editor_preview.html").render(
        article=draft, answers=answers, unavailable=unavailable, part="answers"
    )
    return JSONResponse(
        {"ok": True, "problems": [], "page_html": page_html, "answers_html": answers_html}
    )


@router.post("/api/working-copy")
async def working_copy(request: Request, row: EditorPostDep, session: SessionDep) -> JSONResponse:
    """Keep the unsaved form on the server (autosave while signed in)."""
    fields = await _fields(request)
    key = str(fields.get("key", "new"))
    base = str(fields.get("base_number", "")).strip()
    saved = service.save_working_copy(
        session,
        actor=Actor.for_agent(row.agent),
        key=key,
        data=fields,
        base_revision=int(base) if base.isdigit() else None,
    )
    return JSONResponse({"saved_at": saved.updated_at.isoformat(), "key": key})


@router.post("/api/working-copy/discard")
async def discard_working_copy(
    request: Request, row: EditorPostDep, session: SessionDep
) -> JSONResponse:
    """Throw the server's working copy away (the editor chose the saved revision)."""
    fields = await _fields(request)
    key = str(fields.get("key", "new"))
    if key != "new":
        service.get_article(session, key)
    service.discard_working_copy(session, actor=Actor.for_agent(row.agent), key=key)
    return JSONResponse({"discarded": key})


@router.post("/api/import-file")
async def import_file(request: Request, row: EditorPostDep) -> JSONResponse:
    """Read an uploaded Markdown article into form fields (problems as ``kb validate``)."""
    from knowledge.articles import ArticleError, parse_article

    form = await request.form()
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise InvalidArticleError("Choose a Markdown file to import.")
    data = await upload.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise InvalidArticleError(
            f"That file is larger than {MAX_FILE_BYTES // 1_000_000} MB; it can't be an article."
        )
    name = Path(upload.filename or "article.md").name
    stem = Path(name).stem if Path(name).stem else "article"

    def parse() -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="kb-upload-") as folder:
            path = Path(folder) / f"{stem[:120]}.md"
            path.write_bytes(data)
            try:
                return _form_from_content(parse_article(path).canonical_content())
            except ArticleError as exc:
                problems = [(problem.field, problem.message) for problem in exc.problems]
                raise InvalidArticleError(
                    f"{name} can't be imported: {problems[0][1]}", problems=problems
                ) from exc

    fields = await anyio.to_thread.run_sync(parse)
    return JSONResponse({"fields": fields})


# -- tuning the encoder (a background job) ---------------------------------------------------


def _tune_context(session: Session, settings: Settings) -> dict[str, Any]:
    tune_jobs.end_stale_jobs(session)
    job = tune_jobs.latest_job(session)
    return {
        "tune_drift": tune_drift(settings.index_dir),
        "tune_job": tune_jobs.job_view(job) if job is not None else None,
        "tune_max_minutes": tune_jobs.MAX_MINUTES,
        "tune_max_epochs": tune_jobs.MAX_EPOCHS,
        "tune_roles": service.REVIEWER_ROLES,
    }


# htmx stops polling on this status (and still swaps the body in).
HTMX_STOP_POLLING = 286


async def tune_poller_session(request: Request) -> AgentSession | None:
    """The editor's session; ``None`` for the box's own poll once the session has ended."""
    if request.headers.get("hx-request") == "true":
        row = await load_session(request)
        if row is None or row.second_factor_pending:
            return None
    return await editor_session(request)


@router.get("/tune", response_model=None)
async def tune_box(
    request: Request,
    row: Annotated[AgentSession | None, Depends(tune_poller_session)],
    session: SessionDep,
    settings: SettingsDep,
    templates: TemplatesDep,
) -> Response:
    """The tune box of the article list (polled while a tune runs), or its job as JSON.

    A poll after the session ended stops polling and says so (the tune itself goes on).
    """
    if row is None:
        return HTMLResponse(
            '<section class="card tune-card" id="tune"><h2>Encoder tuning</h2>'
            '<p class="muted">You were signed out; <a href="/desk/login?next=/editor/articles">'
            "sign in again</a> to follow the tune (it goes on meanwhile).</p></section>",
            status_code=HTMX_STOP_POLLING,
        )
    context = _tune_context(session, settings)
    if wants_json(request):
        return JSONResponse({"job": context["tune_job"]})
    return templates.TemplateResponse(request, "editor_tune.html", _context(row, **context))


@router.post("/tune")
async def start_tune(
    request: Request, row: EditorPostDep, session: SessionDep, settings: SettingsDep
) -> Response:
    """Queue a tune and start its process; the box shows its progress."""
    options = tune_jobs.TuneOptions.from_form(await _fields(request))
    job = tune_jobs.start_job(session, actor=Actor.for_agent(row.agent), options=options)
    spawn = getattr(request.app.state, "tune_spawner", None) or tune_jobs.spawn
    try:
        spawn(settings, job.id)
    except OSError as exc:
        logger.exception("kb tune job=%s could not start", job.id)
        tune_jobs.fail_unstarted(session, job.id, f"The tune could not start ({exc.strerror}).")
        raise EditorError("The tune could not start; the operator's log says why.") from exc
    return _done(request, "/editor/articles#tune", {"job": tune_jobs.job_view(job)})


@router.post("/tune/{job_id}/cancel")
async def cancel_tune(
    job_id: int, request: Request, row: EditorPostDep, session: SessionDep
) -> Response:
    """Ask a running tune to stop; the live index stays as it is."""
    job = tune_jobs.request_cancel(session, job_id=job_id, actor=Actor.for_agent(row.agent))
    return _done(request, "/editor/articles#tune", {"job": tune_jobs.job_view(job)})
