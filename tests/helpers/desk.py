"""Desk sign-in helpers for tests: agents made with the service, forms driven like a browser."""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx
import pyotp
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.accounts.models import Team
from bot.agents import service as agents

CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')
TEST_PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class DeskUser:
    """An agent created for a test, with what it takes to sign in."""

    id: int
    email: str
    password: str
    role: str
    totp_secret: str | None = None

    def code(self) -> str:
        """The current TOTP code (the user must have a secret)."""
        assert self.totp_secret is not None
        return pyotp.TOTP(self.totp_secret).now()


def ensure_teams(factory: sessionmaker[Session], *slugs: str) -> None:
    """Create teams by slug unless they exist."""
    with factory() as session:
        for slug in slugs:
            if session.scalars(select(Team).where(Team.slug == slug)).first() is None:
                session.add(Team(slug=slug, name=slug.replace("-", " ").title()))
        session.commit()


def make_user(
    factory: sessionmaker[Session],
    *,
    email: str,
    role: str = "agent",
    teams: tuple[str, ...] = (),
    password: str = TEST_PASSWORD,
    totp: bool = False,
) -> DeskUser:
    """Create a desk user with the service (and a TOTP secret when ``totp``)."""
    with factory() as session:
        agent = agents.create_agent(
            session,
            email=email,
            name=email.split("@")[0].title(),
            password=password,
            role=role,
            team_slugs=teams,
            actor="test",
        )
        secret = agents.enroll_totp(session, agent_id=agent.id, actor="test") if totp else None
        return DeskUser(agent.id, agent.email, password, role, secret)


def form_csrf(html: str) -> str:
    """The first ``csrf_token`` hidden field of a page."""
    match = CSRF_INPUT.search(html)
    assert match, "no csrf_token field on the page"
    return match.group(1)


def post_login(
    client: httpx.Client, email: str, password: str, *, next_path: str | None = None
) -> httpx.Response:
    """Open the sign-in page, then submit it (no redirects followed)."""
    page = client.get("/desk/login", params={"next": next_path} if next_path else None)
    assert page.status_code == 200, page.text
    data = {"email": email, "password": password, "csrf_token": form_csrf(page.text)}
    data["next"] = next_path or ""
    return client.post("/desk/login", data=data, follow_redirects=False)


def sign_in(client: httpx.Client, user: DeskUser) -> None:
    """Sign in completely (password, then the TOTP code when asked)."""
    response = post_login(client, user.email, user.password)
    assert response.status_code == 303, response.text
    if response.headers["location"].startswith("/desk/login/totp"):
        page = client.get("/desk/login/totp")
        data = {"code": user.code(), "csrf_token": form_csrf(page.text), "next": ""}
        done = client.post("/desk/login/totp", data=data, follow_redirects=False)
        assert done.status_code == 303, done.text
