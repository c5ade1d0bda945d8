"""Sign-in rate limits hold under concurrency on PostgreSQL (a burst cannot slip past them).

Attempts at once on separate connections, as from two replicas or one attacker's many
requests: no more than the limit are ever checked in the window.
"""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import pyotp
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.agents.models import LoginAttempt
from bot.agents.service import (
    RateLimitedError,
    SignInError,
    authenticate,
    create_agent,
    start_session,
)
from bot.agents.totp import complete_second_factor

pytestmark = [pytest.mark.integration, pytest.mark.network, pytest.mark.postgres]

BURST = 16
MAX_FAILURES = 5
WINDOW = dt.timedelta(minutes=15)
PASSWORD = "correct-horse-battery"


def _burst(work: object, count: int = BURST) -> list[str]:
    barrier = threading.Barrier(count)

    def run(n: int) -> str:
        barrier.wait()
        return work(n)  # type: ignore[operator]

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def test_a_burst_of_wrong_passwords_gets_no_more_checks_than_the_limit(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as session:
        create_agent(
            session,
            email="ann@x.example",
            name="Ann",
            password=PASSWORD,
            role="agent",
            team_slugs=[],
        )

    def attempt(n: int) -> str:
        with session_factory() as session:
            try:
                authenticate(
                    session,
                    email="ann@x.example",
                    password="wrong-password",
                    client_address=f"10.0.0.{n}",
                    max_failures=MAX_FAILURES,
                    window=WINDOW,
                )
            except RateLimitedError:
                return "limited"
            except SignInError:
                return "checked"
            return "signed in"

    outcomes = _burst(attempt)

    # At most the limit. A burst may get fewer, even none: every attempt is stored as a
    # failure before it counts, so when all sixteen are stored before any counts (a
    # loaded machine), each sees sixteen and is refused. Never more: that is the point.
    checked = outcomes.count("checked")
    assert checked <= MAX_FAILURES
    assert outcomes.count("limited") == BURST - checked
    with session_factory() as session:
        failures = session.scalar(
            select(func.count(LoginAttempt.id)).where(
                LoginAttempt.key == "email:ann@x.example", LoginAttempt.succeeded.is_(False)
            )
        )
    assert failures == checked  # refused attempts leave nothing behind
    # One at a time, the rest of the allowance is checked, then even the right password waits.
    later = [attempt(BURST + n) for n in range(MAX_FAILURES)]
    assert later == ["checked"] * (MAX_FAILURES - checked) + ["limited"] * checked
    with session_factory() as session, pytest.raises(RateLimitedError):
        authenticate(
            session,
            email="ann@x.example",
            password=PASSWORD,
            client_address="10.0.1.1",
            max_failures=MAX_FAILURES,
            window=WINDOW,
        )


def test_a_burst_of_wrong_codes_gets_no_more_checks_than_the_limit(
    session_factory: sessionmaker[Session],
) -> None:
    secret = pyotp.random_base32()
    with session_factory() as session:
        agent = create_agent(
            session, email="bo@x.example", name="Bo", password=PASSWORD, role="admin", team_slugs=[]
        )
        agent.totp_secret = secret
        session.commit()
        waiting = start_session(
            session, agent=agent, lifetime=dt.timedelta(hours=1), second_factor_pending=True
        )
    right = pyotp.TOTP(secret).now()
    wrong = f"{(int(right) + 500_000) % 1_000_000:06d}"

    def attempt(n: int) -> str:
        with session_factory() as session:
            try:
                ok = complete_second_factor(
                    session,
                    session_id=waiting.row.id,
                    code=wrong,
                    max_failures=MAX_FAILURES,
                    window=WINDOW,
                )
            except RateLimitedError:
                return "limited"
            return "accepted" if ok else "refused"

    outcomes = _burst(attempt)

    assert "accepted" not in outcomes
    assert "limited" in outcomes
    with session_factory() as session:
        checked = session.scalar(
            select(func.count(LoginAttempt.id)).where(
                LoginAttempt.key == f"totp:{agent.id}", LoginAttempt.succeeded.is_(False)
            )
        )
    assert checked <= MAX_FAILURES  # none is possible, as above
