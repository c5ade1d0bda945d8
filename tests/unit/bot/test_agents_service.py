"""Desk users: argon2 passwords, one sign-in error, DB rate limit, sessions, TOTP."""

from __future__ import annotations

import datetime as dt

import pyotp
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.agents import service as agents
from bot.agents import totp
from bot.agents.models import Agent, AgentSession, LoginAttempt
from bot.audit.models import AuditEvent
from bot.db.base import utcnow

PASSWORD = "correct horse battery"
WINDOW = dt.timedelta(minutes=15)
HOUR = dt.timedelta(hours=1)


def make_agent(session: Session, email: str = "ann@example.com", **kwargs: object) -> Agent:
    return agents.create_agent(
        session,
        email=email,
        name="Ann Agent",
        password=kwargs.pop("password", PASSWORD),  # type: ignore[arg-type]
        role=kwargs.pop("role", "agent"),  # type: ignore[arg-type]
        team_slugs=kwargs.pop("team_slugs", ()),  # type: ignore[arg-type]
    )


def sign_in(session: Session, email: str, password: str, address: str = "10.0.0.1") -> Agent:
    return agents.authenticate(
        session,
        email=email,
        password=password,
        client_address=address,
        max_failures=5,
        window=WINDOW,
    )


def test_passwords_are_hashed_with_argon2id(session: Session) -> None:
    agent = make_agent(session)

    assert agent.password_hash.startswith("$argon2id$")
    assert PASSWORD not in agent.password_hash
    assert agents.password_hasher().verify(PASSWORD, agent.password_hash)


def test_create_agent_normalises_the_email_and_records_teams(demo_session: Session) -> None:
    agent = make_agent(
        demo_session, email="  Ann@Example.COM ", team_slugs=("customer-care", "key-accounts-dach")
    )

    assert agent.email == "ann@example.com"
    assert sorted(t.slug for t in agent.teams) == ["customer-care", "key-accounts-dach"]
    event = demo_session.scalars(
        select(AuditEvent).where(AuditEvent.action == "agent.created")
    ).one()
    assert event.details == {
        "agent_id": agent.id,
        "role": "agent",
        "teams": ["customer-care", "key-accounts-dach"],
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"role": "superuser"}, "Unknown role"),
        ({"password": "short"}, "at least 10 characters"),
        ({"team_slugs": ("no-such-team",)}, "Unknown team: no-such-team."),
        ({"email": "not-an-email"}, "e-mail address"),
    ],
)
def test_create_agent_refuses_bad_input(
    session: Session, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(agents.AgentError, match=message):
        make_agent(session, **kwargs)  # type: ignore[arg-type]


def test_an_email_has_one_account(session: Session) -> None:
    make_agent(session)

    with pytest.raises(agents.AgentError, match="already a desk account"):
        make_agent(session, email="ANN@example.com")


def test_wrong_password_unknown_user_and_inactive_account_give_one_message(
    session: Session,
) -> None:
    agent = make_agent(session)
    inactive = make_agent(session, email="gone@example.com")
    agents.deactivate(session, agent_id=inactive.id, actor="test")

    messages = []
    for email, password in [
        (agent.email, "not the password"),
        ("nobody@example.com", "not the password"),
        (inactive.email, PASSWORD),
    ]:
        with pytest.raises(agents.SignInError) as caught:
            sign_in(session, email, password)
        messages.append(caught.value.message)

    assert messages == [agents.SIGN_IN_FAILED] * 3
    assert sign_in(session, "ANN@example.com", PASSWORD).id == agent.id


def test_sixth_attempt_within_the_window_is_refused_even_with_the_right_password(
    session: Session,
) -> None:
    agent = make_agent(session)
    for _ in range(5):
        with pytest.raises(agents.SignInError):
            sign_in(session, agent.email, "wrong password")

    with pytest.raises(agents.RateLimitedError) as caught:
        sign_in(session, agent.email, PASSWORD)

    assert caught.value.message == agents.TOO_MANY_ATTEMPTS


def test_the_rate_limit_also_holds_per_client_address(session: Session) -> None:
    agent = make_agent(session)
    for i in range(5):
        with pytest.raises(agents.SignInError):
            sign_in(session, f"guess{i}@example.com", "wrong password", address="203.0.113.9")

    with pytest.raises(agents.RateLimitedError):
        sign_in(session, agent.email, PASSWORD, address="203.0.113.9")
    assert sign_in(session, agent.email, PASSWORD, address="198.51.100.1").id == agent.id


def test_failures_older_than_the_window_do_not_count(session: Session) -> None:
    agent = make_agent(session)
    old = utcnow() - WINDOW - dt.timedelta(minutes=1)
    for _ in range(10):
        session.add(LoginAttempt(key=f"email:{agent.email}", succeeded=False, at=old))
    session.commit()

    assert sign_in(session, agent.email, PASSWORD).id == agent.id


def test_a_session_token_opens_its_session_until_it_expires(session: Session) -> None:
    agent = make_agent(session)
    new = agents.start_session(session, agent=agent, lifetime=HOUR, second_factor_pending=False)

    assert new.row.id == agents.hash_token(new.token) != new.token
    found = agents.session_for_token(session, new.token)
    assert found is not None and found.agent_id == agent.id
    assert agents.session_for_token(session, "forged-token") is None
    assert agents.session_for_token(session, None) is None

    new.row.expires_at = utcnow() - dt.timedelta(seconds=1)
    session.commit()
    assert agents.session_for_token(session, new.token) is None


def test_deactivation_ends_every_session_at_once(session: Session) -> None:
    agent = make_agent(session)
    tokens = [
        agents.start_session(session, agent=agent, lifetime=HOUR, second_factor_pending=False).token
        for _ in range(2)
    ]

    agents.deactivate(session, agent_id=agent.id, actor="agent:99")

    assert all(agents.session_for_token(session, token) is None for token in tokens)
    assert (
        session.scalars(select(AgentSession).where(AgentSession.agent_id == agent.id)).all() == []
    )
    assert session.get(Agent, agent.id).is_active is False  # type: ignore[union-attr]


def test_reset_password_ends_sessions_and_replaces_the_password(session: Session) -> None:
    agent = make_agent(session)
    token = agents.start_session(
        session, agent=agent, lifetime=HOUR, second_factor_pending=False
    ).token

    agents.reset_password(session, agent_id=agent.id, password="a brand new one", actor="cli")

    assert agents.session_for_token(session, token) is None
    with pytest.raises(agents.SignInError):
        sign_in(session, agent.email, PASSWORD)
    assert sign_in(session, agent.email, "a brand new one").id == agent.id


def test_admins_and_enrolled_agents_need_the_second_factor(session: Session) -> None:
    admin = make_agent(session, email="root@example.com", role="admin")
    agent = make_agent(session)

    assert agents.needs_second_factor(admin) is True
    assert agents.needs_second_factor(agent) is False
    agents.enroll_totp(session, agent_id=agent.id, actor="cli")
    assert agents.needs_second_factor(agent) is True


def test_a_wrong_totp_code_leaves_the_session_waiting(session: Session) -> None:
    admin = make_agent(session, email="root@example.com", role="admin")
    secret = agents.enroll_totp(session, agent_id=admin.id, actor="cli")
    new = agents.start_session(session, agent=admin, lifetime=HOUR, second_factor_pending=True)
    right = pyotp.TOTP(secret).now()
    wrong = f"{(int(right) + 500_000) % 1_000_000:06d}"

    assert agents.verify_second_factor(session, row=new.row, code=wrong) is False
    assert new.row.second_factor_pending is True
    assert agents.verify_second_factor(session, row=new.row, code=right) is True
    assert new.row.second_factor_pending is False


# -- bot.agents.totp ---------------------------------------------------------------------------


def test_enrolment_stores_the_offered_secret_only_after_a_right_code(session: Session) -> None:
    admin = make_agent(session, email="root@example.com", role="admin")
    new = agents.start_session(session, agent=admin, lifetime=HOUR, second_factor_pending=True)
    secret = totp.enrolment_secret(new.row)
    assert secret == totp.enrolment_secret(new.row)  # stable for the session
    assert len(secret) == 32

    wrong = f"{(int(pyotp.TOTP(secret).now()) + 500_000) % 1_000_000:06d}"
    assert not totp.complete_second_factor(
        session, session_id=new.row.id, code=wrong, max_failures=5, window=WINDOW
    )
    session.refresh(admin)
    assert admin.totp_secret is None

    ok = totp.complete_second_factor(
        session,
        session_id=new.row.id,
        code=pyotp.TOTP(secret).now(),
        max_failures=5,
        window=WINDOW,
    )

    assert ok is True
    session.refresh(admin)
    session.refresh(new.row)
    assert admin.totp_secret == secret
    assert new.row.second_factor_pending is False
    actions = session.scalars(select(AuditEvent.action)).all()
    assert "agent.totp_enrolled" in actions and "agent.signed_in" in actions


def test_each_session_offers_its_own_enrolment_secret(session: Session) -> None:
    admin = make_agent(session, email="root@example.com", role="admin")
    one = agents.start_session(session, agent=admin, lifetime=HOUR, second_factor_pending=True)
    two = agents.start_session(session, agent=admin, lifetime=HOUR, second_factor_pending=True)

    assert totp.enrolment_secret(one.row) != totp.enrolment_secret(two.row)


def test_too_many_wrong_codes_end_the_waiting_session(session: Session) -> None:
    admin = make_agent(session, email="root@example.com", role="admin")
    secret = agents.enroll_totp(session, agent_id=admin.id, actor="cli")
    new = agents.start_session(session, agent=admin, lifetime=HOUR, second_factor_pending=True)
    wrong = f"{(int(pyotp.TOTP(secret).now()) + 500_000) % 1_000_000:06d}"
    for _ in range(3):
        assert not totp.complete_second_factor(
            session, session_id=new.row.id, code=wrong, max_failures=3, window=WINDOW
        )

    with pytest.raises(agents.RateLimitedError):
        totp.complete_second_factor(
            session,
            session_id=new.row.id,
            code=pyotp.TOTP(secret).now(),
            max_failures=3,
            window=WINDOW,
        )

    assert agents.session_for_token(session, new.token) is None


def test_complete_second_factor_ignores_complete_or_unknown_sessions(session: Session) -> None:
    agent = make_agent(session)
    done = agents.start_session(session, agent=agent, lifetime=HOUR, second_factor_pending=False)

    for session_id in (done.row.id, "unknown"):
        assert not totp.complete_second_factor(
            session, session_id=session_id, code="123456", max_failures=5, window=WINDOW
        )


def test_provisioning_uri_and_grouped_secret() -> None:
    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    uri = totp.provisioning_uri(secret=secret, email="ann@example.com")

    assert uri.startswith("otpauth://totp/Concierge%20desk:ann%40example.com?")
    assert f"secret={secret}" in uri and "issuer=Concierge%20desk" in uri
    assert totp.group_secret(secret) == "JBSW Y3DP EHPK 3PXP JBSW Y3DP EHPK 3PXP"
    assert totp.is_well_formed("012345") and not totp.is_well_formed("12345a")
