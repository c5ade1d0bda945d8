"""Desk sign-in (password, then TOTP where required), sign-out and agent administration.

Routes:
    GET/POST /desk/login                  e-mail and password
    GET/POST /desk/login/totp             the second step (and an admin's first enrolment)
    POST     /desk/logout                 ends the session (CSRF)
    GET/POST /desk/admin/agents           list and create desk accounts (admins only)
    POST     /desk/admin/agents/{id}/deactivate|reactivate|reset-password|totp

The sign-in form has no session to hold a CSRF token yet, so it uses a double-submit
cookie: a random token in an HttpOnly, SameSite=Strict cookie scoped to ``/desk/login``
that the form must repeat, plus the same Origin check as every other desk POST. Pages
that show a password or TOTP secret are sent with ``Cache-Control: no-store``.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass
from typing import Annotated, Any, cast
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from bot.accounts.models import Team
from bot.agents import service as agents
from bot.agents import totp
from bot.agents.models import Agent, AgentSession, Role
from bot.agents.passwords import generate_password
from bot.config import Settings
from bot.web.auth import (
    CSRF_FIELD,
    SESSION_COOKIE,
    SIGN_IN_PATH,
    CsrfDep,
    CurrentSessionDep,
    check_origin,
    clear_session_cookie,
    load_session,
    require_roles,
    set_session_cookie,
    verify_csrf,
)

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/desk", tags=["desk sign-in"])

TOTP_PATH = "/desk/login/totp"
LOGOUT_PATH = "/desk/logout"
ADMIN_AGENTS_PATH = "/desk/admin/agents"
DEFAULT_LANDING = "/desk"
EDITOR_LANDING = "/desk/articles"
LOGIN_CSRF_COOKIE = "concierge_login_csrf"
LOGIN_CSRF_MAX_AGE = 2 * 3600
MAX_NEXT_CHARS = 2000
MAX_FIELD_CHARS = 1000
NO_STORE = {"Cache-Control": "no-store"}

FORM_EXPIRED = "This sign-in form has expired. Please try again."
MISSING_CREDENTIALS = "Enter your e-mail address and your password."
CODE_MALFORMED = "Enter the 6-digit code from your authenticator app."
CODE_WRONG = "That code isn't right. Enter the current code from your authenticator app."

ROLE_DESCRIPTIONS: dict[str, str] = {
    Role.AGENT.value: "agent: works the queues of their teams",
    Role.LEAD.value: "lead: an agent who also sees reports and reviews articles",
    Role.EDITOR.value: "editor: edits knowledge-base articles (no tickets)",
    Role.ADMIN.value: "admin: manages desk accounts (two-step sign-in required)",
}

AdminDep = Annotated[Agent, Depends(require_roles(Role.ADMIN.value))]


# -- helpers ----------------------------------------------------------------------------------


def safe_next(value: str | None) -> str | None:
    """A local path to go to after sign-in, or ``None`` when ``value`` is not one.

    Only absolute paths on this site pass: no scheme, no host, no ``//`` and no
    backslash (browsers read a backslash as a slash, so ``/`` + backslash names a
    host), no control characters, and not the sign-in pages themselves.
    """
    if not value or len(value) > MAX_NEXT_CHARS:
        return None
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return None
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    if parts.path in {SIGN_IN_PATH, TOTP_PATH, LOGOUT_PATH}:
        return None
    return value


def landing(agent: Agent, next_path: str | None) -> str:
    """Where a signed-in person goes: ``next`` if safe, else their role's home page."""
    safe = safe_next(next_path)
    if safe is not None:
        return safe
    return EDITOR_LANDING if agent.role == Role.EDITOR.value else DEFAULT_LANDING


def _with_next(path: str, next_path: str | None) -> str:
    return f"{path}?{urlencode({'next': next_path})}" if next_path else path


def _settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


def _factory(request: Request) -> sessionmaker[Session]:
    return cast(sessionmaker[Session], request.app.state.session_factory)


def _render(
    request: Request, name: str, context: dict[str, Any], *, status_code: int = 200
) -> Response:
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(
        request, name, context, status_code=status_code, headers=NO_STORE
    )


def _field(form: FormData, name: str, *, strip: bool = True) -> str:
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    value = value[:MAX_FIELD_CHARS]
    return value.strip() if strip else value


def _same_token(given: str, expected: str) -> bool:
    return bool(given) and secrets.compare_digest(given.encode(), expected.encode())


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _window(settings: Settings) -> dt.timedelta:
    return dt.timedelta(minutes=settings.login_window_minutes)


def _lifetime(settings: Settings) -> dt.timedelta:
    return dt.timedelta(hours=settings.desk_session_hours)


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=NO_STORE)


# -- sign-in ----------------------------------------------------------------------------------


def _login_page(
    request: Request,
    *,
    next_path: str | None,
    email: str = "",
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    if not 20 <= len(token) <= 100:
        token = secrets.token_urlsafe(24)
    response = _render(
        request,
        "desk_login.html",
        {
            "agent": None,
            "csrf_token": None,
            "login_csrf": token,
            "next": next_path or "",
            "email": email,
            "error": error,
        },
        status_code=status_code,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=LOGIN_CSRF_MAX_AGE,
        httponly=True,
        samesite="strict",
        secure=_settings(request).secure_cookies,
        path=SIGN_IN_PATH,
    )
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_page(
    request: Request, next_path: Annotated[str | None, Query(alias="next")] = None
) -> Response:
    """Show the sign-in form (or go on, for someone already signed in)."""
    row = await load_session(request)
    if row is not None and not row.second_factor_pending:
        return _redirect(landing(row.agent, next_path))
    return _login_page(request, next_path=safe_next(next_path))


@dataclass(frozen=True)
class _SignedIn:
    token: str
    agent_id: int
    pending: bool
    landing: str


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Check the e-mail and password; start a session (waiting for TOTP where required)."""
    check_origin(request)
    settings = _settings(request)
    form = await request.form()
    email = _field(form, "email")
    password = _field(form, "password", strip=False)
    next_path = safe_next(_field(form, "next"))
    cookie_token = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    if not cookie_token or not _same_token(_field(form, CSRF_FIELD), cookie_token):
        logger.warning("sign-in form refused: missing or wrong CSRF token")
        return _login_page(
            request, next_path=next_path, email=email, error=FORM_EXPIRED, status_code=403
        )
    if not email or not password:
        return _login_page(
            request, next_path=next_path, email=email, error=MISSING_CREDENTIALS, status_code=400
        )
    old_token = request.cookies.get(SESSION_COOKIE)

    def sign_in() -> _SignedIn:
        with _factory(request)() as session:
            agent = agents.authenticate(
                session,
                email=email,
                password=password,
                client_address=_client_address(request),
                max_failures=settings.login_max_failures,
                window=_window(settings),
            )
            agents.end_session(session, token=old_token)  # never reuse an earlier session
            pending = agents.needs_second_factor(agent)
            new = agents.start_session(
                session,
                agent=agent,
                lifetime=_lifetime(settings),
                second_factor_pending=pending,
            )
            return _SignedIn(new.token, agent.id, pending, landing(agent, next_path))

    try:
        signed_in = await run_in_threadpool(sign_in)
    except agents.RateLimitedError as error:
        return _login_page(
            request, next_path=next_path, email=email, error=error.message, status_code=429
        )
    except agents.SignInError as error:
        return _login_page(
            request, next_path=next_path, email=email, error=error.message, status_code=401
        )
    logger.info("desk sign-in agent=%s second_factor=%s", signed_in.agent_id, signed_in.pending)
    target = _with_next(TOTP_PATH, next_path) if signed_in.pending else signed_in.landing
    response = _redirect(target)
    set_session_cookie(response, token=signed_in.token, settings=settings)
    response.delete_cookie(
        LOGIN_CSRF_COOKIE,
        path=SIGN_IN_PATH,
        httponly=True,
        samesite="strict",
        secure=settings.secure_cookies,
    )
    return response


# -- second step (TOTP) -----------------------------------------------------------------------


def _totp_page(
    request: Request,
    row: AgentSession,
    *,
    next_path: str | None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    agent = row.agent
    enrol: dict[str, str] | None = None
    if agent.totp_secret is None:
        secret = totp.enrolment_secret(row)
        enrol = {
            "secret": totp.group_secret(secret),
            "uri": totp.provisioning_uri(secret=secret, email=agent.email),
        }
    return _render(
        request,
        "desk_totp.html",
        {
            "agent": None,
            "csrf_token": row.csrf_token,
            "account_email": agent.email,
            "next": next_path or "",
            "enrol": enrol,
            "error": error,
        },
        status_code=status_code,
    )


@router.get("/login/totp", response_class=HTMLResponse)
async def totp_page(
    request: Request, next_path: Annotated[str | None, Query(alias="next")] = None
) -> Response:
    """Ask for the TOTP code (first showing an admin without one how to enrol)."""
    row = await load_session(request)
    if row is None:
        return _redirect(_with_next(SIGN_IN_PATH, safe_next(next_path)))
    if not row.second_factor_pending:
        return _redirect(landing(row.agent, next_path))
    return _totp_page(request, row, next_path=safe_next(next_path))


@router.post("/login/totp", response_class=HTMLResponse)
async def totp_submit(request: Request) -> Response:
    """Check the code; a right one completes the session (and an admin's enrolment)."""
    settings = _settings(request)
    row = await load_session(request)
    form = await request.form()
    next_path = safe_next(_field(form, "next"))
    if row is None:
        check_origin(request)
        return _redirect(_with_next(SIGN_IN_PATH, next_path))
    await verify_csrf(request, row)  # the waiting session's token; 403 when wrong
    if not row.second_factor_pending:
        return _redirect(landing(row.agent, next_path))
    code = _field(form, "code").replace(" ", "")
    if not totp.is_well_formed(code):
        return _totp_page(request, row, next_path=next_path, error=CODE_MALFORMED, status_code=400)

    def check() -> bool:
        with _factory(request)() as session:
            return totp.complete_second_factor(
                session,
                session_id=row.id,
                code=code,
                max_failures=settings.login_max_failures,
                window=_window(settings),
            )

    try:
        ok = await run_in_threadpool(check)
    except agents.RateLimitedError as error:
        response = _login_page(request, next_path=next_path, error=error.message, status_code=429)
        clear_session_cookie(response, settings=settings)
        return response
    if not ok:
        return _totp_page(request, row, next_path=next_path, error=CODE_WRONG, status_code=401)
    logger.info("desk second factor accepted agent=%s", row.agent_id)
    return _redirect(landing(row.agent, next_path))


# -- sign-out ---------------------------------------------------------------------------------


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session (CSRF-checked) and go back to the sign-in page."""
    settings = _settings(request)
    row = await load_session(request)
    if row is not None:
        await verify_csrf(request, row)
        token = request.cookies.get(SESSION_COOKIE)

        def end() -> None:
            with _factory(request)() as session:
                agents.end_session(session, token=token)

        await run_in_threadpool(end)
        logger.info("desk sign-out agent=%s", row.agent_id)
    else:
        check_origin(request)
    response = _redirect(SIGN_IN_PATH)
    clear_session_cookie(response, settings=settings)
    return response


# -- administration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentRow:
    """One desk account as the admin page lists it."""

    id: int
    email: str
    name: str
    role: str
    teams: list[str]
    is_active: bool
    totp_enrolled: bool


@dataclass(frozen=True)
class TeamOption:
    """A team the create form offers."""

    slug: str
    name: str


@dataclass
class AdminView:
    """What the admin page shows besides the list: form state, errors, a one-time secret."""

    values: dict[str, Any]
    errors: dict[str, str]
    notice: str | None = None
    page_error: str | None = None
    one_time: dict[str, str] | None = None


def _empty_view() -> AdminView:
    return AdminView(
        values={"email": "", "name": "", "role": Role.AGENT.value, "teams": []}, errors={}
    )


def _load_directory(session: Session) -> tuple[list[AgentRow], list[TeamOption]]:
    listed = session.scalars(select(Agent).order_by(Agent.is_active.desc(), Agent.email))
    rows = [
        AgentRow(
            id=a.id,
            email=a.email,
            name=a.name,
            role=a.role,
            teams=sorted(t.name for t in a.teams),
            is_active=a.is_active,
            totp_enrolled=a.totp_secret is not None,
        )
        for a in listed
    ]
    teams = [TeamOption(t.slug, t.name) for t in session.scalars(select(Team).order_by(Team.name))]
    return rows, teams


async def _admin_page(
    request: Request, row: AgentSession, view: AdminView, *, status_code: int = 200
) -> Response:
    def load() -> tuple[list[AgentRow], list[TeamOption]]:
        with _factory(request)() as session:
            return _load_directory(session)

    rows, teams = await run_in_threadpool(load)
    first_error = next(
        (name for name in ("form", "email", "name", "role", "teams") if name in view.errors), None
    )
    return _render(
        request,
        "desk_admin_agents.html",
        {
            "agent": row.agent,
            "csrf_token": row.csrf_token,
            "agents": rows,
            "teams": teams,
            "roles": ROLE_DESCRIPTIONS,
            "view": view,
            "first_error": first_error,
        },
        status_code=status_code,
    )


@router.get(
    "/admin/agents",
    response_class=HTMLResponse,
    summary="Desk accounts (admins only)",
)
async def admin_agents(request: Request, admin: AdminDep, row: CurrentSessionDep) -> Response:
    """List every desk account with the form to add one."""
    return await _admin_page(request, row, _empty_view())


@router.post("/admin/agents", response_class=HTMLResponse)
async def admin_create_agent(
    request: Request, admin: AdminDep, row: CurrentSessionDep, _csrf: CsrfDep
) -> Response:
    """Create a desk account with a random password, shown once."""
    form = await request.form()
    values: dict[str, Any] = {
        "email": _field(form, "email").lower(),
        "name": _field(form, "name"),
        "role": _field(form, "role"),
        "teams": [t for t in form.getlist("teams") if isinstance(t, str)][:50],
    }
    view = AdminView(values=values, errors={})
    if "@" not in values["email"]:
        view.errors["email"] = "Enter the person's e-mail address, like name@example.com."
    if not values["name"]:
        view.errors["name"] = "Enter the person's name."
    if values["role"] not in ROLE_DESCRIPTIONS:
        view.errors["role"] = "Choose a role."
    password = generate_password()

    def create() -> None:
        with _factory(request)() as session:
            taken = "email" not in view.errors and agents.agent_by_email(session, values["email"])
            if taken:
                view.errors["email"] = f"There is already a desk account for {values['email']}."
            try:
                agents.teams_by_slug(session, values["teams"])
            except agents.AgentError as error:
                view.errors["teams"] = error.message
            if view.errors:
                return
            try:
                agents.create_agent(
                    session,
                    email=values["email"],
                    name=values["name"],
                    password=password,
                    role=values["role"],
                    team_slugs=values["teams"],
                    actor=f"agent:{admin.id}",
                )
            except agents.AgentError as error:
                view.errors["form"] = error.message

    await run_in_threadpool(create)  # checks the e-mail and teams; creates if all is well
    if view.errors:
        return await _admin_page(request, row, view, status_code=400)
    created = AdminView(
        values=_empty_view().values,
        errors={},
        notice=f"Created the desk account of {values['name']}.",
        one_time={
            "heading": f"Password for {values['name']}",
            "name": values["name"],
            "email": values["email"],
            "password": password,
            "role": values["role"],
        },
    )
    return await _admin_page(request, row, created, status_code=201)


def _find_agent(session: Session, agent_id: int) -> Agent:
    agent = session.get(Agent, agent_id)
    if agent is None:
        raise agents.AgentError("There is no such desk account.")
    return agent


@router.post("/admin/agents/{agent_id}/deactivate", response_class=HTMLResponse)
async def admin_deactivate(
    request: Request, agent_id: int, admin: AdminDep, row: CurrentSessionDep, _csrf: CsrfDep
) -> Response:
    """Deactivate an account; every session of theirs ends at once."""
    if agent_id == admin.id:
        view = _empty_view()
        view.page_error = "You can't deactivate your own account; ask another admin."
        return await _admin_page(request, row, view, status_code=400)

    def run() -> str:
        with _factory(request)() as session:
            name = _find_agent(session, agent_id).name
            agents.deactivate(session, agent_id=agent_id, actor=f"agent:{admin.id}")
            return name

    view = _empty_view()
    try:
        name = await run_in_threadpool(run)
    except agents.AgentError as error:
        view.page_error = error.message
        return await _admin_page(request, row, view, status_code=404)
    view.notice = f"Deactivated {name}; their sessions have ended."
    return await _admin_page(request, row, view)


def _new_password_shown_once(name: str, email: str, password: str) -> dict[str, str]:
    """The admin page's one-time panel for a generated password."""
    return {
        "heading": f"New password for {name}",
        "name": name,
        "email": email,
        "password": password,
    }


@router.post("/admin/agents/{agent_id}/reactivate", response_class=HTMLResponse)
async def admin_reactivate(
    request: Request, agent_id: int, admin: AdminDep, row: CurrentSessionDep, _csrf: CsrfDep
) -> Response:
    """Reactivate a deactivated account with a new random password, shown once."""
    password = generate_password()

    def run() -> tuple[str, str]:
        with _factory(request)() as session:
            agent = _find_agent(session, agent_id)
            agents.reactivate(
                session, agent_id=agent_id, password=password, actor=f"agent:{admin.id}"
            )
            return agent.name, agent.email

    view = _empty_view()
    try:
        name, email = await run_in_threadpool(run)
    except agents.AgentError as error:
        view.page_error = error.message
        return await _admin_page(request, row, view, status_code=400)
    view.notice = f"Reactivated {name} with a new password; the old one no longer works."
    view.one_time = _new_password_shown_once(name, email, password)
    return await _admin_page(request, row, view)


@router.post("/admin/agents/{agent_id}/reset-password", response_class=HTMLResponse)
async def admin_reset_password(
    request: Request, agent_id: int, admin: AdminDep, row: CurrentSessionDep, _csrf: CsrfDep
) -> Response:
    """Give an account a new random password (shown once) and end its sessions."""
    if agent_id == admin.id:
        view = _empty_view()
        view.page_error = (
            "You can't reset your own password here (it would sign you out); ask another "
            "admin or use `python -m bot agents reset-password`."
        )
        return await _admin_page(request, row, view, status_code=400)
    password = generate_password()

    def run() -> tuple[str, str]:
        with _factory(request)() as session:
            agent = _find_agent(session, agent_id)
            if not agent.is_active:
                raise agents.AgentError(f"{agent.name}'s account is deactivated.")
            agents.reset_password(
                session, agent_id=agent_id, password=password, actor=f"agent:{admin.id}"
            )
            return agent.name, agent.email

    view = _empty_view()
    try:
        name, email = await run_in_threadpool(run)
    except agents.AgentError as error:
        view.page_error = error.message
        return await _admin_page(request, row, view, status_code=400)
    logger.info("password reset agent=%s by=%s", agent_id, admin.id)
    view.notice = f"Reset the password of {name}; their sessions have ended."
    view.one_time = _new_password_shown_once(name, email, password)
    return await _admin_page(request, row, view)


@router.post("/admin/agents/{agent_id}/totp", response_class=HTMLResponse)
async def admin_enroll_totp(
    request: Request, agent_id: int, admin: AdminDep, row: CurrentSessionDep, _csrf: CsrfDep
) -> Response:
    """Give an account a new TOTP secret (shown once); their sign-in then asks for codes."""

    def run() -> tuple[str, str, str]:
        with _factory(request)() as session:
            agent = _find_agent(session, agent_id)
            if not agent.is_active:
                raise agents.AgentError(f"{agent.name}'s account is deactivated.")
            secret = agents.enroll_totp(session, agent_id=agent_id, actor=f"agent:{admin.id}")
            return agent.name, agent.email, secret

    view = _empty_view()
    try:
        name, email, secret = await run_in_threadpool(run)
    except agents.AgentError as error:
        view.page_error = error.message
        return await _admin_page(request, row, view, status_code=400)
    view.notice = f"Gave {name} a new two-step sign-in key; the old one no longer works."
    view.one_time = {
        "heading": f"Two-step sign-in key for {name}",
        "name": name,
        "email": email,
        "secret": totp.group_secret(secret),
        "uri": totp.provisioning_uri(secret=secret, email=email),
    }
    return await _admin_page(request, row, view)
