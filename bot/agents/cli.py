"""``python -m bot agents``: create and manage desk accounts from the command line.

Usage:
    python -m bot agents add --email E --name N --role agent --team customer-care
    python -m bot agents add --email E --name N --role lead --team T1 --team T2 --password-stdin
    python -m bot agents list
    python -m bot agents deactivate EMAIL
    python -m bot agents reactivate EMAIL [--password-stdin]
    python -m bot agents reset-password EMAIL [--password-stdin]
    python -m bot agents enroll-totp EMAIL

A generated password or TOTP key is printed once and never stored in readable form.
This module only builds the parser at import; the database is opened when a command runs.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING

from rich.console import Console

from bot.ops.errors import OperationError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from bot.agents.models import Agent
    from bot.config import Settings

ROLES = ("agent", "lead", "editor", "admin")  # bot.agents.models.Role, without the import
CLI_ACTOR = "cli"


def add_agents_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``agents`` and its sub-commands to the ``python -m bot`` parser.

    Args:
        commands: The top-level sub-parsers.
    """
    agents = commands.add_parser(
        "agents",
        help="desk accounts: add, list, deactivate, reactivate, reset-password, enroll-totp",
        description=(
            "Manage the people who sign in to the agent desk. Roles: agent (works the "
            "queues of their teams), lead (an agent who also sees reports), editor "
            "(knowledge-base articles only) and admin (manages accounts; must use "
            "two-step sign-in)."
        ),
    )
    actions = agents.add_subparsers(dest="agents_command", required=True, metavar="ACTION")

    add = actions.add_parser(
        "add",
        help="create a desk account",
        description=(
            "Create a desk account. Without --password-stdin a random password is "
            "generated and printed once."
        ),
    )
    add.add_argument("--email", required=True, help="sign-in e-mail address (unique)")
    add.add_argument("--name", required=True, help="display name; customers see the first name")
    add.add_argument("--role", required=True, choices=ROLES, help="what the account may do")
    add.add_argument(
        "--team",
        action="append",
        default=[],
        metavar="SLUG",
        help="a team whose queue the account works (repeat for several), e.g. customer-care",
    )
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the initial password from standard input instead of generating one",
    )

    actions.add_parser("list", help="list every desk account with role, teams and status")

    deactivate = actions.add_parser(
        "deactivate", help="deactivate an account; its sessions end at once"
    )
    deactivate.add_argument("email", metavar="EMAIL", help="the account's e-mail address")

    reactivate = actions.add_parser(
        "reactivate",
        help="reactivate a deactivated account with a new password (random, printed once)",
    )
    reactivate.add_argument("email", metavar="EMAIL", help="the account's e-mail address")
    reactivate.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the new password from standard input instead of generating one",
    )

    reset = actions.add_parser(
        "reset-password",
        help="set a new password (random, printed once) and end the account's sessions",
    )
    reset.add_argument("email", metavar="EMAIL", help="the account's e-mail address")
    reset.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the new password from standard input instead of generating one",
    )

    enroll = actions.add_parser(
        "enroll-totp",
        help="give an account a new TOTP key for two-step sign-in (printed once)",
    )
    enroll.add_argument("email", metavar="EMAIL", help="the account's e-mail address")


def run_agents_command(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    """Run one ``agents`` sub-command against the app database.

    Args:
        args: Parsed arguments (``agents_command`` names the action).
        settings: The process settings (``database_url``).
        console: Where to print.

    Returns:
        The exit code (0 on success).

    Raises:
        OperationError: The action failed; the message says why (an unknown e-mail, a
            weak password, a database that is not migrated, ...).
    """
    from sqlalchemy.exc import SQLAlchemyError

    from bot.agents.service import AgentError
    from bot.db.session import create_db_engine, create_session_factory

    engine = create_db_engine(settings.database_url)
    try:
        with create_session_factory(engine)() as session:
            handler = _HANDLERS[args.agents_command]
            return handler(session, args, console)
    except AgentError as error:
        raise OperationError(error.message) from error
    except SQLAlchemyError as error:
        raise OperationError(
            f"The app database could not be used: {type(error).__name__}.",
            hint="run `python -m bot setup` (it migrates the database), then try again",
        ) from error
    finally:
        engine.dispose()


def _read_password(prompt: str) -> str:
    """A password from standard input (prompted without echo on a terminal)."""
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    return sys.stdin.readline().rstrip("\r\n")


def _agent(session: Session, email: str) -> Agent:
    from bot.agents.service import AgentError, agent_by_email

    agent = agent_by_email(session, email)
    if agent is None:
        raise AgentError(f"There is no desk account for {email.strip().lower()}.")
    return agent


def _add(session: Session, args: argparse.Namespace, console: Console) -> int:
    from bot.agents.passwords import generate_password
    from bot.agents.service import create_agent

    generated = not args.password_stdin
    password = generate_password() if generated else _read_password("Password: ")
    agent = create_agent(
        session,
        email=args.email,
        name=args.name,
        password=password,
        role=args.role,
        team_slugs=args.team,
        actor=CLI_ACTOR,
    )
    teams = ", ".join(t.slug for t in agent.teams) or "none"
    console.print(
        f"Created {agent.role} {agent.email} ({agent.name}); teams: {teams}.", highlight=False
    )
    if generated:
        _print_once(console, "Password", password)
    if agent.role == "admin":
        console.print(
            "Admins use two-step sign-in: they enrol an authenticator app at their first "
            "sign-in (or run `python -m bot agents enroll-totp EMAIL`)."
        )
    return 0


def _list(session: Session, args: argparse.Namespace, console: Console) -> int:
    from sqlalchemy import select

    from bot.agents.models import Agent

    listed = list(session.scalars(select(Agent).order_by(Agent.is_active.desc(), Agent.email)))
    if not listed:
        console.print("No desk accounts yet. Add one with `python -m bot agents add`.")
        return 0
    width = max(len(agent.email) for agent in listed)
    console.print(
        f"{'E-MAIL':<{width}}  ROLE    STATUS       TWO-STEP  NAME; TEAMS",
        highlight=False,
        soft_wrap=True,
    )
    for agent in listed:  # one line per account: readable in a terminal and with grep
        status = "active" if agent.is_active else "deactivated"
        two_step = "enrolled" if agent.totp_secret else "-"
        teams = ", ".join(sorted(t.slug for t in agent.teams)) or "no teams"
        console.print(
            f"{agent.email:<{width}}  {agent.role:<6}  {status:<11}  {two_step:<8}  "
            f"{agent.name}; {teams}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    return 0


def _deactivate(session: Session, args: argparse.Namespace, console: Console) -> int:
    from bot.agents.service import deactivate

    agent = _agent(session, args.email)
    if not agent.is_active:
        console.print(f"{agent.email} is already deactivated.", highlight=False)
        return 0
    deactivate(session, agent_id=agent.id, actor=CLI_ACTOR)
    console.print(f"Deactivated {agent.email}; their sessions have ended.", highlight=False)
    return 0


def _reactivate(session: Session, args: argparse.Namespace, console: Console) -> int:
    from bot.agents.passwords import generate_password
    from bot.agents.service import reactivate

    agent = _agent(session, args.email)
    if agent.is_active:
        console.print(f"{agent.email} is already active.", highlight=False)
        return 0
    generated = not args.password_stdin
    password = generate_password() if generated else _read_password("New password: ")
    reactivate(session, agent_id=agent.id, password=password, actor=CLI_ACTOR)
    console.print(f"Reactivated {agent.email}; the old password no longer works.", highlight=False)
    if generated:
        _print_once(console, "New password", password)
    return 0


def _reset_password(session: Session, args: argparse.Namespace, console: Console) -> int:
    from bot.agents.passwords import generate_password
    from bot.agents.service import reset_password

    agent = _agent(session, args.email)
    generated = not args.password_stdin
    password = generate_password() if generated else _read_password("New password: ")
    reset_password(session, agent_id=agent.id, password=password, actor=CLI_ACTOR)
    console.print(
        f"Reset the password of {agent.email}; their sessions have ended.", highlight=False
    )
    if generated:
        _print_once(console, "New password", password)
    if not agent.is_active:
        console.print("Note: this account is deactivated, so it still cannot sign in.")
    return 0


def _enroll_totp(session: Session, args: argparse.Namespace, console: Console) -> int:
    from bot.agents.service import enroll_totp
    from bot.agents.totp import group_secret, provisioning_uri

    agent = _agent(session, args.email)
    secret = enroll_totp(session, agent_id=agent.id, actor=CLI_ACTOR)
    console.print(
        f"{agent.email} now signs in with a code from an authenticator app; any earlier key "
        "no longer works.",
        highlight=False,
    )
    _print_once(console, "TOTP key", group_secret(secret))
    _print_once(console, "Setup link", provisioning_uri(secret=secret, email=agent.email))
    return 0


def _print_once(console: Console, label: str, value: str) -> None:
    """Print a secret with a reminder that it is shown only now."""
    console.print(f"{label} (shown once, copy it now): ", end="")
    console.print(value, markup=False, highlight=False, soft_wrap=True)


_HANDLERS = {
    "add": _add,
    "list": _list,
    "deactivate": _deactivate,
    "reactivate": _reactivate,
    "reset-password": _reset_password,
    "enroll-totp": _enroll_totp,
}
