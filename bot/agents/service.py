"""Desk users: create them, check passwords (argon2), rate-limit sign-ins, keep sessions.

Sessions are server-side rows (``agent_sessions``): the cookie carries a random token and
the database keeps only its SHA-256, so every bot-service replica sees the same sessions
and deactivating an agent ends them all at once. Failed sign-ins are rows too
(``login_attempts``), so the rate limit holds across replicas.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import pyotp
from pwdlib import PasswordHash
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

import bot.db.models  # noqa: F401  (every table must be mapped before the first query)
from bot.accounts.models import Team
from bot.agents.models import Agent, AgentSession, LoginAttempt, Role
from bot.audit.service import record_event
from bot.db.base import utcnow

logger = logging.getLogger(__name__)

SESSION_TOKEN_BYTES = 32
MIN_PASSWORD_CHARS = 10
# The columns' lengths (agents.email, agents.name): PostgreSQL refuses longer values.
MAX_EMAIL_CHARS = 320
MAX_NAME_CHARS = 200
SIGN_IN_FAILED = "That e-mail and password don't match an active desk account."
TOO_MANY_ATTEMPTS = "Too many sign-in attempts. Please wait a few minutes and try again."


class AgentError(Exception):
    """A desk-user operation failed; ``message`` is one sentence for the person."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class SignInError(AgentError):
    """Wrong e-mail or password, or an inactive account (one message for all of them)."""

    def __init__(self) -> None:
        super().__init__(SIGN_IN_FAILED)


class RateLimitedError(AgentError):
    """Too many failed sign-ins for this e-mail or client address."""

    def __init__(self) -> None:
        super().__init__(TOO_MANY_ATTEMPTS)


@lru_cache(maxsize=1)
def password_hasher() -> PasswordHash:
    """The argon2 hasher (pwdlib's recommended parameters)."""
    return PasswordHash.recommended()


def hash_token(token: str) -> str:
    """SHA-256 hex of a session token (what the database stores)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _normal_email(email: str) -> str:
    return email.strip().lower()


def check_password_strength(password: str) -> None:
    """Refuse a password that is too short.

    Raises:
        AgentError: It has fewer than :data:`MIN_PASSWORD_CHARS` characters.
    """
    if len(password) < MIN_PASSWORD_CHARS:
        raise AgentError(f"A password needs at least {MIN_PASSWORD_CHARS} characters.")


def create_agent(
    session: Session,
    *,
    email: str,
    name: str,
    password: str,
    role: str = Role.AGENT.value,
    team_slugs: Iterable[str] = (),
    actor: str = "cli",
) -> Agent:
    """Create a desk user.

    Args:
        session: The open session (committed here).
        email: Sign-in e-mail (unique, case-insensitive).
        name: Display name (the customer sees the first name).
        password: The initial password.
        role: A :class:`Role` value.
        team_slugs: Teams whose queues the agent works.
        actor: Who created it, for the audit log.

    Returns:
        The new agent.

    Raises:
        AgentError: Unknown role or team, weak password, or the e-mail is taken.
    """
    if role not in {r.value for r in Role}:
        raise AgentError(f"Unknown role {role!r}; use one of: {', '.join(r.value for r in Role)}.")
    check_password_strength(password)
    email = _normal_email(email)
    if not email or "@" not in email:
        raise AgentError("Give the agent's e-mail address.")
    if len(email) > MAX_EMAIL_CHARS:
        raise AgentError(f"That e-mail address is too long (at most {MAX_EMAIL_CHARS} characters).")
    if len(name.strip()) > MAX_NAME_CHARS:
        raise AgentError(f"That name is too long (at most {MAX_NAME_CHARS} characters).")
    if session.scalars(select(Agent.id).where(Agent.email == email)).first() is not None:
        raise AgentError(f"There is already a desk account for {email}.")
    teams = teams_by_slug(session, team_slugs)
    agent = Agent(
        email=email,
        name=name.strip() or email[:MAX_NAME_CHARS],
        role=role,
        password_hash=password_hasher().hash(password),
        teams=teams,
    )
    session.add(agent)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="agent.created",
        details={"agent_id": agent.id, "role": role, "teams": [t.slug for t in teams]},
    )
    session.commit()
    logger.info("agent created agent=%s role=%s", agent.id, role)
    return agent


def teams_by_slug(session: Session, slugs: Iterable[str]) -> list[Team]:
    """Look teams up by slug.

    Raises:
        AgentError: A slug names no team.
    """
    wanted = [slug.strip() for slug in slugs if slug.strip()]
    found = {t.slug: t for t in session.scalars(select(Team).where(Team.slug.in_(wanted)))}
    missing = [slug for slug in wanted if slug not in found]
    if missing:
        raise AgentError(f"Unknown team: {', '.join(missing)}.")
    return [found[slug] for slug in wanted]


def agent_by_email(session: Session, email: str) -> Agent | None:
    """The agent with this e-mail (case-insensitive), if any."""
    return session.scalars(select(Agent).where(Agent.email == _normal_email(email))).first()


# -- sign-in --------------------------------------------------------------------------------


def recent_failures(session: Session, key: str, since: dt.datetime) -> int:
    """Failed attempts recorded under ``key`` (``email:…``, ``ip:…``) since ``since``."""
    return int(
        session.scalar(
            select(func.count(LoginAttempt.id)).where(
                LoginAttempt.key == key,
                LoginAttempt.succeeded.is_(False),
                LoginAttempt.at > since,
            )
        )
        or 0
    )


def reserve_attempts(
    session: Session, keys: Sequence[str], *, max_failures: int, window: dt.timedelta
) -> list[LoginAttempt]:
    """Record an attempt under each key as a failure, then check the limit; commits.

    Recording before counting is what makes the limit hold under concurrency: of
    attempts made at once (on any replica), the one committed last counts every other,
    so at most ``max_failures`` are let through in the window. Counting first would let
    a whole burst through (every attempt reads the count before any is stored). Settle
    the attempts with :func:`settle_attempts` once checked.

    Args:
        session: The open session.
        keys: ``email:…``, ``ip:…`` or ``totp:…`` keys.
        max_failures: Failures allowed per key within ``window``.
        window: The rate-limit window.

    Returns:
        The recorded attempts.

    Raises:
        RateLimitedError: Over the limit for a key (nothing is left recorded).
    """
    now = utcnow()
    attempts = [LoginAttempt(key=key, succeeded=False, at=now) for key in keys]
    session.add_all(attempts)
    session.commit()
    if any(recent_failures(session, key, now - window) > max_failures for key in keys):
        for attempt in attempts:
            session.delete(attempt)
        session.commit()
        raise RateLimitedError
    return attempts


def settle_attempts(session: Session, attempts: Sequence[LoginAttempt], *, succeeded: bool) -> None:
    """Store the outcome of attempts recorded by :func:`reserve_attempts`; commits."""
    for attempt in attempts:
        attempt.succeeded = succeeded
    session.commit()


def authenticate(
    session: Session,
    *,
    email: str,
    password: str,
    client_address: str,
    max_failures: int,
    window: dt.timedelta,
) -> Agent:
    """Check an e-mail and password, rate-limited per e-mail and per client address.

    Unknown e-mail, wrong password and inactive account give the same error, and an
    unknown e-mail still costs one argon2 verification, so neither message nor timing
    tells which e-mails have accounts.

    Raises:
        RateLimitedError: Too many recent failures for the e-mail or the address.
        SignInError: The e-mail and password do not match an active agent.
    """
    keys = [f"email:{_normal_email(email)}"[:400], f"ip:{client_address}"[:400]]
    try:
        attempts = reserve_attempts(session, keys, max_failures=max_failures, window=window)
    except RateLimitedError:
        logger.warning("sign-in rate-limited address=%s", client_address)
        raise
    agent = agent_by_email(session, email)
    hasher = password_hasher()
    if agent is None:
        hasher.verify(password, _dummy_hash())
        ok = False
    else:
        ok = hasher.verify(password, agent.password_hash) and agent.is_active
    settle_attempts(session, attempts, succeeded=ok)
    if not ok or agent is None:
        logger.info("sign-in failed address=%s", client_address)
        raise SignInError
    return agent


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return password_hasher().hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class NewSession:
    """A session just created: the raw cookie token is only available here."""

    token: str
    row: AgentSession


def start_session(
    session: Session, *, agent: Agent, lifetime: dt.timedelta, second_factor_pending: bool
) -> NewSession:
    """Create a sign-in session for an agent.

    Args:
        session: The open session (committed here).
        agent: The signed-in agent.
        lifetime: How long the session lasts.
        second_factor_pending: True until the agent's TOTP code is checked.

    Returns:
        The raw token (for the cookie) and the stored row.
    """
    token = secrets.token_urlsafe(SESSION_TOKEN_BYTES)
    now = utcnow()
    row = AgentSession(
        id=hash_token(token),
        agent_id=agent.id,
        csrf_token=secrets.token_urlsafe(24),
        second_factor_pending=second_factor_pending,
        created_at=now,
        last_seen_at=now,
        expires_at=now + lifetime,
    )
    session.add(row)
    if not second_factor_pending:
        record_event(session, actor=f"agent:{agent.id}", action="agent.signed_in", details={})
    session.commit()
    return NewSession(token=token, row=row)


TOUCH_EVERY = dt.timedelta(seconds=60)


def session_for_token(session: Session, token: str | None) -> AgentSession | None:
    """The live session a cookie token opens (expired, unknown or inactive: ``None``).

    ``last_seen_at`` is refreshed at most once a minute (it feeds "who is online").
    """
    if not token or len(token) > 200:
        return None
    row = session.get(AgentSession, hash_token(token))
    now = utcnow()
    if row is None or row.expires_at <= now or not row.agent.is_active:
        return None
    if now - row.last_seen_at > TOUCH_EVERY:
        row.last_seen_at = now
        session.commit()
    return row


def verify_second_factor(session: Session, *, row: AgentSession, code: str) -> bool:
    """Check a TOTP code for a session waiting for it; on success the session is complete.

    Returns:
        Whether the code was right.
    """
    secret = row.agent.totp_secret
    if not secret or not pyotp.TOTP(secret).verify(code.strip(), valid_window=1):
        return False
    row.second_factor_pending = False
    record_event(session, actor=f"agent:{row.agent_id}", action="agent.signed_in", details={})
    session.commit()
    return True


def end_session(session: Session, *, token: str | None) -> None:
    """Sign out: delete the session row (unknown tokens are ignored)."""
    if token:
        session.execute(delete(AgentSession).where(AgentSession.id == hash_token(token)))
        session.commit()


# -- administration -------------------------------------------------------------------------


def deactivate(session: Session, *, agent_id: int, actor: str) -> Agent:
    """Deactivate an agent and end every session they have, at once.

    Raises:
        AgentError: No such agent.
    """
    agent = session.get(Agent, agent_id)
    if agent is None:
        raise AgentError("There is no such agent.")
    agent.is_active = False
    session.execute(delete(AgentSession).where(AgentSession.agent_id == agent_id))
    record_event(session, actor=actor, action="agent.deactivated", details={"agent_id": agent_id})
    session.commit()
    logger.info("agent deactivated agent=%s by=%s", agent_id, actor)
    return agent


def reactivate(session: Session, *, agent_id: int, password: str, actor: str) -> Agent:
    """Reactivate a deactivated agent with a new password (the old one is not restored).

    A deactivated account's password may be known to someone who should no longer have
    it, so it never comes back: the caller generates a new one and shows it once.
    Teams, role and a two-step sign-in key are kept.

    Raises:
        AgentError: No such agent, the account is already active, or a weak password.
    """
    check_password_strength(password)
    agent = session.get(Agent, agent_id)
    if agent is None:
        raise AgentError("There is no such agent.")
    if agent.is_active:
        raise AgentError(f"{agent.name}'s account is already active.")
    agent.is_active = True
    agent.password_hash = password_hasher().hash(password)
    record_event(session, actor=actor, action="agent.reactivated", details={"agent_id": agent_id})
    session.commit()
    logger.info("agent reactivated agent=%s by=%s", agent_id, actor)
    return agent


def reset_password(session: Session, *, agent_id: int, password: str, actor: str) -> Agent:
    """Set a new password and end the agent's sessions.

    Raises:
        AgentError: No such agent, or a weak password.
    """
    check_password_strength(password)
    agent = session.get(Agent, agent_id)
    if agent is None:
        raise AgentError("There is no such agent.")
    agent.password_hash = password_hasher().hash(password)
    session.execute(delete(AgentSession).where(AgentSession.agent_id == agent_id))
    record_event(
        session, actor=actor, action="agent.password_reset", details={"agent_id": agent_id}
    )
    session.commit()
    return agent


def enroll_totp(session: Session, *, agent_id: int, actor: str) -> str:
    """Give an agent a new TOTP secret (two-step sign-in) and return it once.

    Raises:
        AgentError: No such agent.
    """
    agent = session.get(Agent, agent_id)
    if agent is None:
        raise AgentError("There is no such agent.")
    secret = pyotp.random_base32()
    agent.totp_secret = secret
    record_event(session, actor=actor, action="agent.totp_enrolled", details={"agent_id": agent_id})
    session.commit()
    return secret


def needs_second_factor(agent: Agent) -> bool:
    """Whether sign-in asks for a TOTP code: always for admins, and for anyone enrolled."""
    return agent.role == Role.ADMIN.value or agent.totp_secret is not None
