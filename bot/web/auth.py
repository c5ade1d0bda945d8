"""Desk authentication and request protection, as FastAPI dependencies.

* ``CurrentAgentDep``: the signed-in agent (a complete session: password and, where
  required, TOTP). HTML routes without one redirect to the sign-in page; ``/desk/api``
  routes answer 401.
* ``require_roles(...)``: a dependency that refuses other roles with 403.
* ``CsrfDep``: every state-changing desk request must carry the session's CSRF token
  (form field ``csrf_token`` or header ``X-CSRF-Token``) and, when the browser sends
  one, an ``Origin`` equal to the public URL's. Cookies are also ``SameSite=Lax``.
* ``check_origin``: the live channel (server-sent events) refuses foreign Origins.

The session cookie is ``HttpOnly``, ``SameSite=Lax`` and ``Secure`` whenever the
public URL is https.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import urlsplit

import anyio.to_thread
from fastapi import Depends, HTTPException, Request, status
from fastapi.responses import Response
from sqlalchemy.orm import Session, sessionmaker

from bot.agents import service as agents
from bot.agents.models import Agent, AgentSession
from bot.config import Settings

logger = logging.getLogger(__name__)

SESSION_COOKIE = "concierge_desk"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SIGN_IN_PATH = "/desk/login"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SignInRequiredError(Exception):
    """No complete desk session; browsers are sent to the sign-in page."""

    def __init__(self, *, wants_html: bool, next_path: str) -> None:
        self.wants_html = wants_html
        self.next_path = next_path
        super().__init__("sign-in required")


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _sessions(request: Request) -> sessionmaker[Session]:
    return request.app.state.session_factory


def set_session_cookie(response: Response, *, token: str, settings: Settings) -> None:
    """Attach the desk session cookie."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(settings.desk_session_hours * 3600),
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
        path="/",
    )


def clear_session_cookie(response: Response, *, settings: Settings) -> None:
    """Remove the desk session cookie."""
    response.delete_cookie(
        SESSION_COOKIE, httponly=True, samesite="lax", secure=settings.secure_cookies, path="/"
    )


async def load_session(request: Request) -> AgentSession | None:
    """The request's live desk session row (complete or waiting for TOTP), if any."""
    cached = getattr(request.state, "desk_session", None)
    if cached is not None:
        return cached
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None

    def lookup() -> AgentSession | None:
        with _sessions(request)() as session:
            row = agents.session_for_token(session, token)
            if row is not None:
                _ = row.agent.teams  # load while the session is open
            return row

    row = await anyio.to_thread.run_sync(lookup)
    request.state.desk_session = row
    return row


async def current_session(request: Request) -> AgentSession:
    """The request's complete desk session.

    Raises:
        SignInRequiredError: None, expired, or still waiting for the second factor.
    """
    row = await load_session(request)
    if row is None or row.second_factor_pending:
        wants_html = not request.url.path.startswith("/desk/api")
        raise SignInRequiredError(wants_html=wants_html, next_path=request.url.path)
    return row


async def current_agent(row: Annotated[AgentSession, Depends(current_session)]) -> Agent:
    """The signed-in agent."""
    return row.agent


CurrentSessionDep = Annotated[AgentSession, Depends(current_session)]
CurrentAgentDep = Annotated[Agent, Depends(current_agent)]


def require_roles(*roles: str) -> Callable[[Agent], Coroutine[Any, Any, Agent]]:
    """A dependency that lets only these roles through (others get 403).

    Args:
        roles: :class:`bot.agents.models.Role` values.

    Returns:
        The dependency, which returns the agent.
    """

    async def dependency(agent: CurrentAgentDep) -> Agent:
        if agent.role not in roles:
            logger.warning("agent=%s role=%s refused (needs %s)", agent.id, agent.role, roles)
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="Your role can't do that.")
        return agent

    return dependency


def expected_origin(settings: Settings) -> str:
    """``scheme://host[:port]`` of the public URL."""
    parts = urlsplit(settings.public_url)
    return f"{parts.scheme}://{parts.netloc}"


def check_origin(request: Request) -> None:
    """Refuse a request whose ``Origin`` header names another site.

    A request without ``Origin`` (same-origin GET, curl) passes; the CSRF token and the
    SameSite cookie still protect state changes.

    Raises:
        HTTPException: 403 for a foreign Origin.
    """
    origin = request.headers.get("origin")
    if origin is None:
        return
    allowed = {expected_origin(_settings(request)), f"{request.url.scheme}://{request.url.netloc}"}
    if origin not in allowed:
        logger.warning(
            "refused cross-site %s %s origin=%r", request.method, request.url.path, origin
        )
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="Cross-site request refused.")


async def verify_csrf(request: Request, row: CurrentSessionDep) -> None:
    """Check the CSRF token (and Origin) of a state-changing desk request.

    Raises:
        HTTPException: 403 when the token is missing or wrong, or the Origin is foreign.
    """
    if request.method in SAFE_METHODS:
        return
    check_origin(request)
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not given or not secrets.compare_digest(given.encode(), row.csrf_token.encode()):
        logger.warning(
            "refused %s %s agent=%s: missing or wrong CSRF token",
            request.method,
            request.url.path,
            row.agent_id,
        )
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail="This form has expired; reload the page."
        )


CsrfDep = Annotated[None, Depends(verify_csrf)]
