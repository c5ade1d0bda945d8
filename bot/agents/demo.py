"""Demo desk accounts for ``python -m bot setup``: an agent per team, a lead, an editor, an admin.

Idempotent: an account is created only when its e-mail has none, with a random password
that is printed once and appended to ``var/demo-credentials.txt`` (mode 0600) for a
developer who missed the output. The admin also gets a TOTP key, printed the same way.
Tests and end-to-end fixtures create their own agents with :mod:`bot.agents.service`.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.accounts.demo import TEAMS
from bot.accounts.models import Team
from bot.agents.models import Role
from bot.agents.passwords import generate_password
from bot.agents.service import agent_by_email, create_agent, enroll_totp
from bot.agents.totp import group_secret, provisioning_uri
from bot.config import Settings

logger = logging.getLogger(__name__)

CREDENTIALS_FILENAME = "demo-credentials.txt"
DEMO_DOMAIN = "kestrel.example"
DEMO_ACTOR = "setup"

# One agent per demo team, in the order of bot.accounts.demo.TEAMS; extra teams get a
# generic name.
_AGENT_NAMES = ("Alex Morgan", "Jonas Weber", "Linnea Berg", "Hannah Okafor")


@dataclass(frozen=True)
class DemoAccount:
    """A demo desk account to create: e-mail, display name, role and teams."""

    email: str
    name: str
    role: str
    team_slugs: tuple[str, ...]


@dataclass(frozen=True)
class DemoCredential:
    """What a developer needs to sign in as a demo account just created."""

    email: str
    name: str
    role: str
    teams: tuple[str, ...]
    password: str
    totp_secret: str | None = None

    def lines(self) -> list[str]:
        """Human-readable lines for the console and the credentials file."""
        teams = ", ".join(self.teams) or "none"
        lines = [
            f"{self.role:<6}  {self.email}  ({self.name}; teams: {teams})",
            f"        password: {self.password}",
        ]
        if self.totp_secret is not None:
            lines += [
                f"        TOTP key: {group_secret(self.totp_secret)}",
                f"        TOTP link: {provisioning_uri(secret=self.totp_secret, email=self.email)}",
            ]
        return lines


def demo_accounts() -> list[DemoAccount]:
    """The demo desk accounts: one agent per demo team, then a lead, an editor and an admin."""
    team_slugs = tuple(spec.slug for spec in TEAMS)
    accounts = [
        DemoAccount(
            email=f"agent.{slug}@{DEMO_DOMAIN}",
            name=_AGENT_NAMES[i] if i < len(_AGENT_NAMES) else f"Demo Agent {i + 1}",
            role=Role.AGENT.value,
            team_slugs=(slug,),
        )
        for i, slug in enumerate(team_slugs)
    ]
    accounts += [
        DemoAccount(f"lead@{DEMO_DOMAIN}", "Lena Fischer", Role.LEAD.value, team_slugs),
        DemoAccount(f"editor@{DEMO_DOMAIN}", "Omar Haddad", Role.EDITOR.value, ()),
        DemoAccount(f"admin@{DEMO_DOMAIN}", "Rita Novak", Role.ADMIN.value, team_slugs),
    ]
    return accounts


def ensure_demo_agents(session: Session) -> list[DemoCredential]:
    """Create the demo accounts that do not exist yet.

    Teams that are not in the database (demo data not loaded) are left out of an
    account's teams rather than failing.

    Args:
        session: The open session (each account is committed as it is created).

    Returns:
        The credentials of the accounts created now (empty when all existed).
    """
    existing_teams = set(session.scalars(select(Team.slug)))
    created: list[DemoCredential] = []
    for account in demo_accounts():
        if agent_by_email(session, account.email) is not None:
            continue
        teams = tuple(slug for slug in account.team_slugs if slug in existing_teams)
        password = generate_password()
        agent = create_agent(
            session,
            email=account.email,
            name=account.name,
            password=password,
            role=account.role,
            team_slugs=teams,
            actor=DEMO_ACTOR,
        )
        secret = None
        if account.role == Role.ADMIN.value:
            secret = enroll_totp(session, agent_id=agent.id, actor=DEMO_ACTOR)
        created.append(DemoCredential(agent.email, agent.name, agent.role, teams, password, secret))
        logger.info("demo desk account created agent=%s role=%s", agent.id, agent.role)
    return created


def write_credentials(path: Path, credentials: list[DemoCredential]) -> None:
    """Append credentials to ``path``, creating it readable by its owner only (0600).

    Args:
        path: The credentials file (``var/demo-credentials.txt``).
        credentials: The accounts just created.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = [f"# Demo desk accounts created by `python -m bot setup` on {stamp}"]
    for credential in credentials:
        text += credential.lines()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)  # also when the file existed with other modes
        handle.write("\n".join(text) + "\n\n")


def create_and_report(session: Session, *, var_dir: Path, console: Console, base_url: str) -> int:
    """Create the missing demo accounts and show their credentials once.

    Args:
        session: The open session.
        var_dir: Where ``demo-credentials.txt`` goes.
        console: Where the credentials are printed.
        base_url: The bot service's public URL (for the sign-in address).

    Returns:
        How many accounts were created.
    """
    path = var_dir / CREDENTIALS_FILENAME
    created = ensure_demo_agents(session)
    if not created:
        console.print(
            "[green]✓[/] Demo desk accounts exist (their credentials were printed when they "
            f"were created, and saved in {path})"
        )
        return 0
    write_credentials(path, created)
    console.print(
        f"[green]✓[/] Demo desk accounts created ({len(created)}). Sign in at "
        f"{base_url}/desk/login with these credentials, shown only now "
        f"(also saved, readable only by you, in {path}):"
    )
    for credential in created:
        # soft_wrap: never break a password or link across lines (copy-paste must work)
        console.print("\n".join(credential.lines()), markup=False, highlight=False, soft_wrap=True)
    console.print("The admin also needs a code from an authenticator app set up with the TOTP key.")
    return len(created)


def seed_demo_agents(settings: Settings, console: Console) -> int:
    """Set-up step: create the missing demo desk accounts in the app database.

    Args:
        settings: The process settings (database URL, ``var/``, public URL).
        console: Where the credentials are printed.

    Returns:
        How many accounts were created.
    """
    from bot.db.session import create_db_engine, create_session_factory

    engine = create_db_engine(settings.database_url)
    try:
        with create_session_factory(engine)() as session:
            return create_and_report(
                session, var_dir=settings.var_dir, console=console, base_url=settings.public_url
            )
    finally:
        engine.dispose()
