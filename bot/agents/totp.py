"""The second sign-in step (TOTP): first enrolment at sign-in, rate-limited code checks.

An admin who has no TOTP secret yet is shown one while their session waits for the
second factor. That secret is derived from the session (HMAC of its stored id, which
only the server knows), so nothing is written until the admin confirms a code from
their app: leaving the page half-way changes nothing, and the next sign-in shows a new
secret. Wrong codes are counted like wrong passwords (``login_attempts`` rows keyed
``totp:<agent id>``), so a stolen password does not allow guessing codes for long.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
import re

import pyotp
from sqlalchemy import delete
from sqlalchemy.orm import Session

from bot.agents.models import Agent, AgentSession
from bot.agents.service import (
    RateLimitedError,
    reserve_attempts,
    settle_attempts,
    verify_second_factor,
)
from bot.audit.service import record_event

logger = logging.getLogger(__name__)

ISSUER = "Concierge desk"
CODE_PATTERN = re.compile(r"^[0-9]{6}$")
_ENROLMENT_LABEL = b"concierge-desk-totp-enrolment"


def provisioning_uri(*, secret: str, email: str) -> str:
    """The ``otpauth://`` URI an authenticator app reads (as text or as a QR code)."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def group_secret(secret: str) -> str:
    """The secret in groups of four characters, easier to type into an app."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def enrolment_secret(row: AgentSession) -> str:
    """The TOTP secret offered to an agent who enrols while this session waits for it.

    Args:
        row: A session waiting for its second factor.

    Returns:
        A base32 secret (160 bits), the same for every request of this session.
    """
    digest = hmac.new(row.id.encode("ascii"), _ENROLMENT_LABEL, hashlib.sha256).digest()
    return base64.b32encode(digest[:20]).decode("ascii")


def is_well_formed(code: str) -> bool:
    """Whether a code has the shape of a TOTP code (six digits)."""
    return CODE_PATTERN.fullmatch(code) is not None


def complete_second_factor(
    session: Session,
    *,
    session_id: str,
    code: str,
    max_failures: int,
    window: dt.timedelta,
) -> bool:
    """Check a code for a session waiting for its second factor, enrolling if needed.

    An agent with a secret must give a code for it. An agent without one (an admin's
    first sign-in) must give a code for :func:`enrolment_secret`; a right code stores
    that secret. Either way a right code completes the session.

    Args:
        session: The open database session (committed here).
        session_id: The waiting session's id (``AgentSession.id``).
        code: What the person typed (spaces are ignored).
        max_failures: Wrong codes allowed per agent within ``window``.
        window: The rate-limit window.

    Returns:
        Whether the code was right (``False`` too when the session is gone or complete).

    Raises:
        RateLimitedError: Too many wrong codes recently; the waiting session is ended,
            so the person has to start again with their password.
    """
    row = session.get(AgentSession, session_id)
    if row is None or not row.second_factor_pending:
        return False
    agent: Agent = row.agent
    try:  # recorded as a failure before the check: the limit holds for codes sent at once
        attempts = reserve_attempts(
            session, [f"totp:{agent.id}"], max_failures=max_failures, window=window
        )
    except RateLimitedError:
        session.execute(delete(AgentSession).where(AgentSession.id == row.id))
        session.commit()
        logger.warning("second factor rate-limited agent=%s", agent.id)
        raise
    code = code.replace(" ", "")
    ok = False
    if is_well_formed(code) and agent.totp_secret is None:
        secret = enrolment_secret(row)
        if pyotp.TOTP(secret).verify(code, valid_window=1):
            agent.totp_secret = secret
            record_event(
                session,
                actor=f"agent:{agent.id}",
                action="agent.totp_enrolled",
                details={"agent_id": agent.id, "at_sign_in": True},
            )
            ok = verify_second_factor(session, row=row, code=code)  # commits both on success
            if ok:
                logger.info("totp enrolled at sign-in agent=%s", agent.id)
            else:  # the code expired between the two checks: store nothing
                session.rollback()
    elif is_well_formed(code):
        ok = verify_second_factor(session, row=row, code=code)
    settle_attempts(session, attempts, succeeded=ok)
    if not ok:
        logger.info("second factor refused agent=%s", agent.id)
    return ok
