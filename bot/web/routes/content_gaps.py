"""Content gaps for editors: failed customer questions grouped by meaning.

* ``GET /editor/gaps``: the groups, most questions first, each with its counts, example
  wordings, first and last time asked, the share that got negative feedback, the nearest
  live article, and two links into the article editor: start a new article with the
  group's wordings as alternate questions, or add them to the nearest article.
* ``GET /editor/api/gaps``: the same data as JSON.

Both take ``days`` (1–365, default 30; the page offers 7, 30 and 90) and are for editors,
leads and admins (agents get 403). Signed out, the page redirects to sign-in and the JSON
endpoint answers 401. Both only read; there is nothing to post.

Grouping embeds the questions, so it runs in a worker thread, one at a time per process,
and its result is kept for a few minutes (see :mod:`bot.content_gaps.service`).
"""

from __future__ import annotations

import logging
import threading
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session, sessionmaker

from bot.agents.models import Agent, AgentSession, Role
from bot.content_gaps.service import (
    ContentGaps,
    ContentGapsService,
    live_build_id,
    live_query_encoder,
)
from bot.reports.queries import DAY_CHOICES, DEFAULT_DAYS, MAX_DAYS, MIN_DAYS
from bot.web.auth import CurrentSessionDep, SignInRequiredError, load_session, require_roles
from bot.web.deps import SettingsDep, TemplatesDep
from bot.web.knowledge import get_knowledge_base

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/editor", tags=["content-gaps"])

EDITOR_ROLES = (Role.EDITOR.value, Role.LEAD.value, Role.ADMIN.value)
EditorDep = Annotated[Agent, Depends(require_roles(*EDITOR_ROLES))]
DaysQuery = Annotated[
    int, Query(ge=MIN_DAYS, le=MAX_DAYS, description="The last this many days (UTC).")
]
_lock = threading.Lock()


async def api_editor(request: Request) -> Agent:
    """The signed-in editor, lead or admin of a JSON request (401 signed out, else 403)."""
    row: AgentSession | None = await load_session(request)
    if row is None or row.second_factor_pending:
        raise SignInRequiredError(wants_html=False, next_path=request.url.path)
    if row.agent.role not in EDITOR_ROLES:
        logger.warning("agent=%s role=%s refused content gaps", row.agent.id, row.agent.role)
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="Your role can't do that.")
    return row.agent


ApiEditorDep = Annotated[Agent, Depends(api_editor)]


def get_content_gaps(request: Request, settings: SettingsDep) -> ContentGapsService:
    """The process's content-gaps service, created on first use (tests put one first)."""
    state = request.app.state
    existing: ContentGapsService | None = getattr(state, "content_gaps", None)
    if existing is not None:
        return existing
    with _lock:
        existing = getattr(state, "content_gaps", None)
        if existing is None:
            index_dir = settings.index_dir
            knowledge_base = get_knowledge_base(state, settings)
            existing = ContentGapsService(
                encoder_source=lambda: live_query_encoder(index_dir),
                build_probe=lambda: live_build_id(index_dir),
                search=knowledge_base,
                policy=settings.kb_answer_policy(),
                out_of_scope=knowledge_base.out_of_scope_articles,
            )
            state.content_gaps = existing
        return existing


ServiceDep = Annotated[ContentGapsService, Depends(get_content_gaps)]


async def _gaps(request: Request, service: ContentGapsService, days: int) -> ContentGaps:
    factory: sessionmaker[Session] = request.app.state.session_factory

    def run() -> ContentGaps:
        with factory() as session:
            return service.gaps(session, days=days)

    return await anyio.to_thread.run_sync(run)


def format_percent(rate: float | None) -> str:
    """``0.254`` → ``"25%"``; ``None`` → an em dash."""
    return "—" if rate is None else f"{rate * 100:.0f}%"


@router.get("/gaps", response_class=HTMLResponse, name="content_gaps")
async def gaps_page(
    request: Request,
    agent: EditorDep,
    row: CurrentSessionDep,
    templates: TemplatesDep,
    service: ServiceDep,
    days: DaysQuery = DEFAULT_DAYS,
) -> HTMLResponse:
    """The content-gaps page."""
    gaps = await _gaps(request, service, days)
    return templates.TemplateResponse(
        request,
        "content_gaps.html",
        {
            "agent": agent,
            "csrf_token": row.csrf_token,
            "gaps": gaps,
            "days": days,
            "day_choices": sorted({*DAY_CHOICES, days}),
            "json_url": f"/editor/api/gaps?days={days}",
            "percent": format_percent,
        },
    )


@router.get("/api/gaps", name="content_gaps_json")
async def gaps_json(
    request: Request, agent: ApiEditorDep, service: ServiceDep, days: DaysQuery = DEFAULT_DAYS
) -> ContentGaps:
    """The content gaps as JSON."""
    return await _gaps(request, service, days)
