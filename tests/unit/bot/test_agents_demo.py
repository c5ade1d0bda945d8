"""Demo desk accounts: one agent per demo team plus a lead, an editor and an admin, once."""

from __future__ import annotations

import stat
from pathlib import Path

from rich.console import Console
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.accounts.demo import TEAMS
from bot.agents import service as agents
from bot.agents.demo import CREDENTIALS_FILENAME, create_and_report, ensure_demo_agents
from bot.agents.models import Agent


def test_demo_accounts_cover_every_team_and_role_and_are_created_once(
    demo_session: Session,
) -> None:
    created = ensure_demo_agents(demo_session)

    assert len(created) == len(TEAMS) + 3
    roles = [c.role for c in created]
    assert roles.count("agent") == len(TEAMS)
    assert {"lead", "editor", "admin"} <= set(roles)
    agent_teams = {c.teams for c in created if c.role == "agent"}
    assert agent_teams == {(spec.slug,) for spec in TEAMS}
    [admin] = [c for c in created if c.role == "admin"]
    assert admin.totp_secret is not None
    assert all(c.totp_secret is None for c in created if c.role != "admin")
    for credential in created:  # each printed password signs in
        agent = agents.agent_by_email(demo_session, credential.email)
        assert agent is not None
        assert agents.password_hasher().verify(credential.password, agent.password_hash)

    assert ensure_demo_agents(demo_session) == []
    assert demo_session.scalar(select(func.count(Agent.id))) == len(created)


def test_an_existing_account_is_left_alone(demo_session: Session) -> None:
    agents.create_agent(
        demo_session,
        email="lead@kestrel.example",
        name="Someone Else",
        password="their own password",
        role="agent",
    )

    created = ensure_demo_agents(demo_session)

    assert "lead@kestrel.example" not in {c.email for c in created}
    lead = agents.agent_by_email(demo_session, "lead@kestrel.example")
    assert lead is not None and lead.name == "Someone Else"


def test_credentials_are_printed_once_and_saved_readable_only_by_the_owner(
    demo_session: Session, tmp_path: Path
) -> None:
    console = Console(record=True, width=200)

    assert (
        create_and_report(
            demo_session, var_dir=tmp_path, console=console, base_url="http://127.0.0.1:8000"
        )
        == len(TEAMS) + 3
    )
    first = console.export_text()
    path = tmp_path / CREDENTIALS_FILENAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = path.read_text(encoding="utf-8")
    for line in ("admin@kestrel.example", "password: ", "TOTP key: ", "otpauth://totp/"):
        assert line in first and line in saved
    assert "http://127.0.0.1:8000/desk/login" in first
    assert str(path) in first

    again = Console(record=True, width=200)
    assert (
        create_and_report(
            demo_session, var_dir=tmp_path, console=again, base_url="http://127.0.0.1:8000"
        )
        == 0
    )
    assert "password" not in again.export_text()
    assert path.read_text(encoding="utf-8") == saved
