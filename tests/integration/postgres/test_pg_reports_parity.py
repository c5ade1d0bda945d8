"""The reports give the same figures on PostgreSQL as on SQLite for the same rows.

The rows are generated (seeded, so every run is the same) with the awkward cases: times a
second either side of midnight UTC and of the period's start, JSON payloads with and
without a citation (and a JSON ``null`` one), feedback with ``helpful`` true and false,
withheld replies, button taps, questions differing only in case, spaces, accents and end
punctuation, every ticket status, ratings at the period's edges, business contacts with
and without a dedicated team. The PostgreSQL server runs in a time zone far from UTC.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session

from bot.accounts.models import DEFAULT_TEAM_SLUG, Account, Contact, Team
from bot.audit.models import AuditEvent
from bot.conversations.models import Conversation, Message
from bot.db.session import create_db_engine, create_session_factory, upgrade_database
from bot.handoff.models import Ticket
from bot.reports.queries import KB_NO_ANSWER_REPLIES, build_report
from tests.helpers.postgres_server import PostgresServer

pytestmark = [pytest.mark.integration, pytest.mark.network, pytest.mark.postgres]

NOW = dt.datetime(2026, 11, 20, 23, 59, 59, tzinfo=dt.UTC)
FIRST_DAY = dt.datetime(2026, 11, 5, tzinfo=dt.UTC)
DAYS = 16
QUESTIONS = [
    "Do you ship to Mars?",
    "do you  ship to mars",
    "DO YOU SHIP TO MARS?!",
    "Où est mon colis ?",
    "où est mon colis",
    "Can I pay with shells…",
    "can i pay with shells",
    "/request_human",
    "   ",
]
CITATION = {"citation": {"article_id": "shipping-times", "title": "Delivery", "score": 0.8}}
REASONS = ["customer_request", "repeated_no_answer", "frustration", "negative_feedback"]
STATUSES = ["queued", "assigned", "resolved", "withdrawn", "resolved", "resolved"]


def _moment(rng: random.Random) -> dt.datetime:
    day = FIRST_DAY + dt.timedelta(days=rng.randrange(DAYS))
    edge = rng.random()
    if edge < 0.2:  # just before or at midnight UTC
        return day + dt.timedelta(seconds=rng.choice([0, 1, -1, 86399]))
    if edge < 0.3:  # around midnight in the server's zone (UTC+13:45)
        return day + dt.timedelta(hours=10, minutes=15, seconds=rng.choice([-1, 0, 1]))
    return day + dt.timedelta(seconds=rng.randrange(86400))


def _fill(session: Session, seed: int = 20261124) -> None:
    rng = random.Random(seed)
    care = Team(slug=DEFAULT_TEAM_SLUG, name="Customer Care")
    business = Team(slug="business-desk", name="Business Desk")
    billing = Team(slug="billing", name="Billing")
    session.add_all([care, business, billing])
    session.flush()
    dedicated = Account(number="B-1", name="Acme", segment="b2b", tier="gold", team_id=business.id)
    undedicated = Account(number="B-2", name="Bolt", segment="b2b", tier="silver")
    consumer = Account(number="C-1", name="Cleo", segment="b2c", tier="standard")
    session.add_all([dedicated, undedicated, consumer])
    session.flush()
    contacts = [
        Contact(account_id=account.id, name=account.name, email=f"{account.number}@x.example")
        for account in (dedicated, undedicated, consumer)
    ]
    session.add_all(contacts)
    session.flush()
    for n in range(60):
        created = _moment(rng)
        contact = rng.choice([None, None, *contacts])
        conversation = Conversation(
            id=f"c{n:03d}",
            created_at=created,
            updated_at=created,
            contact_id=contact.id if contact else None,
        )
        session.add(conversation)
        session.flush()
        when = created
        for _ in range(rng.randrange(0, 5)):
            when += dt.timedelta(seconds=rng.randrange(1, 400))
            text = rng.choice(QUESTIONS)
            payload = {"button_payload": text} if text.startswith("/") else None
            session.add(
                Message(
                    conversation_id=conversation.id,
                    role="customer",
                    text=text,
                    payload=payload,
                    created_at=when,
                )
            )
            reply, reply_payload = rng.choice(
                [
                    (KB_NO_ANSWER_REPLIES[0], {"buttons": []}),
                    (KB_NO_ANSWER_REPLIES[1], None),
                    ("Delivery takes 2-4 days.", CITATION),
                    ("Here are some articles.", {"citation": None, "buttons": []}),
                    ("Hello!", None),
                ]
            )
            session.add(
                Message(
                    conversation_id=conversation.id,
                    role="bot",
                    text=reply,
                    payload=reply_payload,
                    status=rng.choice(["delivered"] * 5 + ["withheld"]),
                    created_at=when,
                )
            )
            session.flush()
        if rng.random() < 0.3:
            session.add(
                AuditEvent(
                    at=when,
                    actor="action_server",
                    action="kb.feedback",
                    conversation_id=conversation.id,
                    details={"article_id": "shipping-times", "helpful": rng.random() < 0.5},
                )
            )
        count = rng.choice([0, 0, 1, 1, 2])
        for index in range(count):
            opened = when + dt.timedelta(seconds=rng.randrange(1, 3600))
            # At most one open ticket per conversation: an earlier one is closed.
            status = rng.choice(STATUSES if index == count - 1 else STATUSES[2:])
            closed = status in ("resolved", "withdrawn")
            replied = opened + dt.timedelta(seconds=rng.randrange(0, 7200))
            rated = opened + dt.timedelta(seconds=rng.randrange(3600, 86400 * 2))
            rating = rng.randint(1, 5) if status == "resolved" and rng.random() < 0.7 else None
            session.add(
                Ticket(
                    conversation_id=conversation.id,
                    status=status,
                    reason_code=rng.choice(REASONS),
                    reason="reason",
                    team_id=rng.choice([care.id, business.id, billing.id, None]),
                    created_at=opened,
                    updated_at=opened,
                    first_agent_reply_at=replied if status != "queued" else None,
                    closed_at=replied + dt.timedelta(minutes=5) if closed else None,
                    rating=rating,
                    rated_at=rated if rating else None,
                )
            )
            session.flush()
    session.commit()


@pytest.fixture(scope="module")
def databases(
    postgres_server: PostgresServer,
    migrated_template: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Callable[[], Session]]]:
    """The same rows in a SQLite file and a PostgreSQL database (filled once per module)."""
    database = postgres_server.create_database(template=migrated_template)
    database_url = postgres_server.url(database)
    tmp_path = tmp_path_factory.mktemp("parity")
    sqlite_url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade_database(sqlite_url)
    engines = {"sqlite": create_db_engine(sqlite_url), "postgresql": create_db_engine(database_url)}
    factories = {name: create_session_factory(engine) for name, engine in engines.items()}
    for factory in factories.values():
        with factory() as session:
            _fill(session)
    yield factories
    for engine in engines.values():
        engine.dispose()
    postgres_server.drop_database(database)


def _report(factory: Callable[[], Session], days: int, teams: list[str] | None) -> dict[str, Any]:
    with factory() as session:
        team_ids = None
        if teams is not None:
            team_ids = [team.id for team in session.query(Team).filter(Team.slug.in_(teams)).all()]
        return build_report(session, days=days, team_ids=team_ids, now=NOW).model_dump()


@pytest.mark.parametrize("days", [1, 7, 30])
def test_every_figure_is_the_same_on_both_databases(
    databases: dict[str, Callable[[], Session]], days: int
) -> None:
    for teams in (None, [DEFAULT_TEAM_SLUG], ["business-desk"], ["billing", "business-desk"]):
        on_sqlite = _report(databases["sqlite"], days, teams)
        on_postgres = _report(databases["postgresql"], days, teams)
        assert on_postgres == on_sqlite, f"days={days} teams={teams}"


def test_the_compared_figures_are_not_empty(databases: dict[str, Callable[[], Session]]) -> None:
    report = _report(databases["postgresql"], 30, None)
    assert report["conversations_per_day"]["total"] > 20
    assert 0 < report["self_service"]["resolved"] < report["self_service"]["conversations"]
    assert len(report["handoffs"]["by_reason"]) == len(REASONS)
    assert report["first_reply"]["answered"] > 5 and report["first_reply"]["waiting"] > 0
    assert report["satisfaction"]["count"] > 5
    assert report["unanswered"]["questions"][0]["count"] > 1
    # Midnight UTC is one day's end and the next day's start, whatever the server's zone.
    per_day = {row["day"]: row["conversations"] for row in report["conversations_per_day"]["days"]}
    assert sum(per_day.values()) == report["conversations_per_day"]["total"]
