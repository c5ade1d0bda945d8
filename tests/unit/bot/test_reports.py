"""Report figures on a hand-made SQLite database whose every figure is known in advance."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.orm import Session

from bot.accounts.models import DEFAULT_TEAM_SLUG, Account, Contact, Team
from bot.audit.models import AuditEvent
from bot.conversations.models import Conversation, Message
from bot.handoff.models import Ticket
from bot.reports import queries
from bot.reports.queries import (
    KB_NO_ANSWER_REPLIES,
    ReportPeriod,
    build_report,
    nearest_rank_percentile,
    normalise_question,
)

NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
UNKNOWN, UNKNOWN_AGAIN = KB_NO_ANSWER_REPLIES
CITATION = {"citation": {"article_id": "shipping-times", "title": "Delivery", "score": 0.81}}
ROOT = Path(__file__).resolve().parents[3]


def at(day: int, hour: int = 10, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=dt.UTC)


class World:
    """Builds rows with explicit times; ``ids`` maps names to database ids."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def conversation(
        self, name: str, created: dt.datetime, *, contact: Contact | None = None
    ) -> str:
        self.session.add(
            Conversation(
                id=name,
                created_at=created,
                updated_at=created,
                contact_id=contact.id if contact else None,
            )
        )
        self.session.flush()
        return name

    def say(
        self,
        conversation: str,
        role: str,
        text: str,
        when: dt.datetime,
        payload: dict[str, Any] | None = None,
        status: str = "delivered",
    ) -> None:
        self.session.add(
            Message(
                conversation_id=conversation,
                role=role,
                text=text,
                payload=payload,
                status=status,
                created_at=when,
            )
        )
        self.session.flush()

    def feedback(self, conversation: str, *, helpful: bool, when: dt.datetime) -> None:
        self.session.add(
            AuditEvent(
                at=when,
                actor="action_server",
                action="kb.feedback",
                conversation_id=conversation,
                details={"article_id": "shipping-times", "outcome": "answered", "helpful": helpful},
            )
        )

    def ticket(
        self,
        conversation: str,
        *,
        reason: str,
        team: Team,
        status: str,
        created: dt.datetime,
        replied: dt.datetime | None = None,
        closed: dt.datetime | None = None,
        rating: int | None = None,
        rated: dt.datetime | None = None,
    ) -> None:
        self.session.add(
            Ticket(
                conversation_id=conversation,
                status=status,
                reason_code=reason,
                reason=reason.replace("_", " "),
                team_id=team.id,
                created_at=created,
                updated_at=created,
                first_agent_reply_at=replied,
                closed_at=closed,
                rating=rating,
                rated_at=rated,
            )
        )
        self.session.flush()


@pytest.fixture
def teams(session: Session) -> dict[str, Team]:
    care = Team(slug=DEFAULT_TEAM_SLUG, name="Customer Care")
    business = Team(slug="business-desk", name="Business Desk")
    session.add_all([care, business])
    session.flush()
    return {"care": care, "business": business}


@pytest.fixture
def world(session: Session, teams: dict[str, Team]) -> World:
    """Ten conversations (seven count), seven tickets, five ratings, two feedback events.

    Period: 14–20 November 2026 (7 days, now = 20 Nov 12:00 UTC).
    """
    care, business = teams["care"], teams["business"]
    account = Account(number="B-1", name="Acme", segment="b2b", tier="gold", team_id=business.id)
    session.add(account)
    session.flush()
    contact = Contact(account_id=account.id, name="Ada", email="ada@acme.example")
    session.add(contact)
    session.flush()
    w = World(session)

    # c1: answered from the knowledge base, nothing else -> self-service.
    w.conversation("c1", at(14, 9))
    w.say("c1", "customer", "How long does delivery take?", at(14, 9, 1))
    w.say("c1", "bot", "Delivery takes 2-4 days.", at(14, 9, 1), payload=CITATION)

    # c2: answered, but the customer said it did not help -> not self-service.
    w.conversation("c2", at(14, 15))
    w.say("c2", "customer", "Where is my parcel?", at(14, 15, 1))
    w.say("c2", "bot", "Track it under My orders.", at(14, 15, 1), payload=CITATION)
    w.feedback("c2", helpful=False, when=at(14, 15, 2))

    # c3: a business contact, answered and found helpful -> self-service (business desk).
    w.conversation("c3", at(15), contact=contact)
    w.say("c3", "customer", "How does net 30 work?", at(15, 10, 1))
    w.say("c3", "bot", "You pay 30 days after the invoice.", at(15, 10, 1), payload=CITATION)
    w.feedback("c3", helpful=True, when=at(15, 10, 2))

    # c4: two unanswered questions, a withdrawn ticket, then a second one answered in 12 min.
    w.conversation("c4", at(16, 9))
    w.say("c4", "customer", "Do you ship to Mars?", at(16, 9, 1))
    w.say("c4", "bot", UNKNOWN, at(16, 9, 1), payload={"buttons": []})
    w.say("c4", "customer", "do you  ship to mars", at(16, 9, 2))
    w.say("c4", "bot", UNKNOWN_AGAIN, at(16, 9, 2))
    w.ticket(
        "c4",
        reason="customer_request",
        team=care,
        status="withdrawn",
        created=at(16, 10),
        closed=at(16, 10, 5),
    )
    w.ticket(
        "c4",
        reason="repeated_no_answer",
        team=care,
        status="resolved",
        created=at(16, 11),
        replied=at(16, 11, 12),
        closed=at(16, 11, 30),
        rating=2,
        rated=at(16, 12),
    )

    # c5: a business ticket answered in 3 minutes, rated 5.
    w.conversation("c5", at(16, 8), contact=contact)
    w.say("c5", "customer", "I want to talk to a person", at(16, 8, 59))
    w.ticket(
        "c5",
        reason="customer_request",
        team=business,
        status="resolved",
        created=at(16, 9),
        replied=at(16, 9, 3),
        closed=at(16, 9, 20),
        rating=5,
        rated=at(17),
    )

    # c6: a button tap the bot could not answer (not a question), a real unanswered
    # question, and a ticket still waiting.
    w.conversation("c6", at(18))
    w.say(
        "c6",
        "customer",
        "Gift returns",
        at(18, 10, 1),
        payload={"button_payload": '/choose_article{"article_id":"gone"}'},
    )
    w.say("c6", "bot", UNKNOWN, at(18, 10, 1))
    w.say("c6", "customer", "Can I pay with gold bars?", at(18, 10, 2))
    w.say("c6", "bot", UNKNOWN, at(18, 10, 2))
    w.ticket("c6", reason="offer_accepted", team=care, status="queued", created=at(18, 10, 3))

    # c7: silent: opened, never written in -> not a conversation.
    w.conversation("c7", at(19))
    w.say("c7", "bot", "Hi! How can I help?", at(19, 10, 0))

    # c8: before the period (its unanswered question does not count either).
    w.conversation("c8", at(10))
    w.say("c8", "customer", "Do you ship to Mars?", at(10, 10, 1))
    w.say("c8", "bot", UNKNOWN, at(10, 10, 1))
    w.ticket(
        "c8",
        reason="kb_no_answer",
        team=care,
        status="resolved",
        created=at(10, 11),
        replied=at(10, 11, 1),
        closed=at(10, 12),
        rating=1,
        rated=at(15),  # rated inside the period: counts for satisfaction
    )
    w.ticket(
        "c8",
        reason="kb_no_answer",
        team=care,
        status="resolved",
        created=at(10, 13),
        closed=at(10, 14),
        rating=3,
        rated=at(12),  # rated before the period
    )

    # c9: a reply withheld (never shown) does not count as a knowledge answer.
    w.conversation("c9", at(19, 11))
    w.say("c9", "customer", "How long does delivery take?", at(19, 11, 1))
    w.say("c9", "bot", "Delivery takes 2-4 days.", at(19, 11, 1), CITATION, status="withheld")

    # c10: a business contact whose ticket is Customer Care's: counts for Customer Care.
    w.conversation("c10", at(20, 7), contact=contact)
    w.say("c10", "customer", "This is useless!!", at(20, 7, 59))
    w.say("c10", "bot", "Sorry about that.", at(20, 7, 59))
    w.ticket(
        "c10",
        reason="frustration",
        team=care,
        status="resolved",
        created=at(20, 8),
        replied=at(20, 8, 45),
        closed=at(20, 9),
        rating=4,
        rated=at(20, 9, 5),
    )
    session.commit()
    return w


def test_every_figure_for_all_teams(session: Session, world: World) -> None:
    report = build_report(session, days=7, now=NOW)

    assert report.period.start == at(14, 0) and report.period.end == at(21, 0)
    assert [(d.day.day, d.conversations) for d in report.conversations_per_day.days] == [
        (14, 2),
        (15, 1),
        (16, 2),
        (17, 0),
        (18, 1),
        (19, 1),
        (20, 1),
    ]
    assert report.conversations_per_day.total == 8

    # c1 and c3 of c1-c6, c9, c10.
    assert (report.self_service.resolved, report.self_service.conversations) == (2, 8)
    assert report.self_service.rate == pytest.approx(0.25)

    handoffs = report.handoffs
    assert (handoffs.handed_off, handoffs.conversations) == (4, 8)  # c4, c5, c6, c10
    assert handoffs.rate == pytest.approx(0.5)
    assert [(r.reason_code, r.tickets, r.conversations) for r in handoffs.by_reason] == [
        ("customer_request", 2, 2),
        ("frustration", 1, 1),
        ("offer_accepted", 1, 1),
        ("repeated_no_answer", 1, 1),
    ]
    assert handoffs.by_reason[0].rate == pytest.approx(0.25)
    assert handoffs.by_reason[0].label == "Asked for a person"

    first = report.first_reply  # tickets of c4 (2), c5, c6, c10; answered in 12, 3, 45 min
    assert (first.tickets, first.answered, first.waiting, first.closed_without_reply) == (
        5,
        3,
        1,
        1,
    )
    assert first.p50_minutes == pytest.approx(12.0)
    assert first.p90_minutes == pytest.approx(45.0)

    rated = report.satisfaction  # 2 (c4), 5 (c5), 1 (c8, rated in the period), 4 (c10)
    assert rated.count == 4
    assert rated.mean == pytest.approx(3.0)
    assert [(r.rating, r.count) for r in rated.distribution] == [
        (1, 1),
        (2, 1),
        (3, 0),
        (4, 1),
        (5, 1),
    ]
    assert rated.share_good == pytest.approx(0.5)

    unanswered = report.unanswered
    assert unanswered.total == 3
    assert [(q.text, q.example, q.count) for q in unanswered.questions] == [
        ("do you ship to mars", "do you  ship to mars", 2),
        ("can i pay with gold bars", "Can I pay with gold bars?", 1),
    ]
    assert unanswered.questions[0].last_asked_at == at(16, 9, 2)


def test_team_filter_follows_tickets_then_routing(
    session: Session, world: World, teams: dict[str, Team]
) -> None:
    care = build_report(session, days=7, team_ids=[teams["care"].id], now=NOW)
    business = build_report(session, days=7, team_ids=[teams["business"].id], now=NOW)

    # Customer Care: c1, c2, c9 (no ticket, no business account), c4, c6, c10 (its tickets).
    assert care.conversations_per_day.total == 6
    assert [d.conversations for d in care.conversations_per_day.days] == [2, 0, 1, 0, 1, 1, 1]
    assert (care.self_service.resolved, care.self_service.conversations) == (1, 6)
    assert (care.handoffs.handed_off, care.handoffs.conversations) == (3, 6)
    assert [(r.reason_code, r.tickets) for r in care.handoffs.by_reason] == [
        ("customer_request", 1),
        ("frustration", 1),
        ("offer_accepted", 1),
        ("repeated_no_answer", 1),
    ]
    assert (care.first_reply.answered, care.first_reply.p50_minutes) == (2, 12.0)
    assert care.first_reply.p90_minutes == 45.0
    assert care.satisfaction.count == 3
    assert care.satisfaction.mean == pytest.approx(7 / 3)
    assert care.unanswered.total == 3

    # Business Desk: c3 (business account, no ticket) and c5 (its ticket).
    assert business.conversations_per_day.total == 2
    assert (business.self_service.resolved, business.self_service.conversations) == (1, 2)
    assert business.handoffs.rate == pytest.approx(0.5)
    assert (business.first_reply.p50_minutes, business.first_reply.p90_minutes) == (3.0, 3.0)
    assert (business.satisfaction.count, business.satisfaction.mean) == (1, 5.0)
    assert business.unanswered.questions == []

    nobody = build_report(session, days=7, team_ids=[], now=NOW)
    assert nobody.conversations_per_day.total == 0
    assert nobody.self_service.rate is None and nobody.handoffs.rate is None
    assert nobody.first_reply.p50_minutes is None and nobody.satisfaction.mean is None


def test_default_team_missing_leaves_ticketless_conversations_unrouted(
    session: Session, world: World, teams: dict[str, Team]
) -> None:
    teams["care"].slug = "renamed"
    session.commit()

    care = build_report(session, days=7, team_ids=[teams["care"].id], now=NOW)

    assert care.conversations_per_day.total == 3  # only c4, c6, c10, through their tickets


def test_shorter_period_and_empty_database(session: Session, world: World) -> None:
    today = build_report(session, days=1, now=NOW)
    assert [(d.day, d.conversations) for d in today.conversations_per_day.days] == [
        (dt.date(2026, 11, 20), 1)
    ]
    assert today.satisfaction.count == 1  # c10, rated today

    session.query(Message).delete()
    session.commit()
    empty = build_report(session, days=30, now=NOW)
    assert len(empty.conversations_per_day.days) == 30
    assert empty.conversations_per_day.total == 0
    assert empty.self_service.rate is None
    assert empty.unanswered.questions == []


def test_report_serialises_to_json_with_definitions(session: Session, world: World) -> None:
    data = build_report(session, days=7, now=NOW).model_dump(mode="json")

    assert data["conversations_per_day"]["days"][0] == {"day": "2026-11-14", "conversations": 2}
    for figure in (
        "conversations_per_day",
        "self_service",
        "handoffs",
        "first_reply",
        "satisfaction",
        "unanswered",
    ):
        assert data[figure]["definition"]
    assert data["self_service"]["definition"] == queries.SELF_SERVICE_DEFINITION


def test_period_bounds() -> None:
    period = ReportPeriod.last(30, now=dt.datetime(2026, 3, 1, 23, 59, tzinfo=dt.UTC))
    assert period.start == dt.datetime(2026, 1, 31, tzinfo=dt.UTC)
    assert period.end == dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    assert period.dates()[0] == dt.date(2026, 1, 31) and period.dates()[-1] == dt.date(2026, 3, 1)
    # A time in another zone is taken in UTC.
    berlin = dt.timezone(dt.timedelta(hours=1))
    assert ReportPeriod.last(1, now=dt.datetime(2026, 3, 2, 0, 30, tzinfo=berlin)).start == (
        dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    )
    for days in (0, 366):
        with pytest.raises(ValueError, match="between 1 and 365"):
            ReportPeriod.last(days, now=NOW)


@pytest.mark.parametrize(
    ("values", "p50", "p90"),
    [
        ([], None, None),
        ([7.0], 7.0, 7.0),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 5, 9),
        ([10, 1, 100, 2], 2, 100),
        ([3.0, 12.0, 45.0], 12.0, 45.0),
    ],
)
def test_nearest_rank_percentile(values: list[float], p50: float | None, p90: float | None) -> None:
    assert nearest_rank_percentile(values, 50) == p50
    assert nearest_rank_percentile(values, 90) == p90


def test_percentile_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        nearest_rank_percentile([1.0], 0)


def test_normalise_question() -> None:
    assert normalise_question("  Do you   SHIP to Mars?! ") == "do you ship to mars"
    assert normalise_question("Ｃａｎ I pay…") == "can i pay"
    assert normalise_question("???") == ""


def test_no_answer_replies_match_the_domain() -> None:
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    responses = domain["responses"]
    texts = tuple(
        responses[name][0]["text"] for name in ("utter_kb_unknown", "utter_kb_unknown_again")
    )
    assert texts == KB_NO_ANSWER_REPLIES


def test_docs_give_every_definition_word_for_word() -> None:
    docs = " ".join((ROOT / "docs" / "desk.md").read_text(encoding="utf-8").split())
    for definition in (
        queries.CONVERSATIONS_PER_DAY_DEFINITION,
        queries.SELF_SERVICE_DEFINITION,
        queries.HANDOFF_RATE_DEFINITION,
        queries.FIRST_REPLY_DEFINITION,
        queries.SATISFACTION_DEFINITION,
        queries.UNANSWERED_DEFINITION,
        queries.TEAM_FILTER_DEFINITION,
    ):
        assert definition in docs
