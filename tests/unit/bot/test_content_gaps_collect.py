"""Collecting content-gap questions from a migrated SQLite database with real rows."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy.orm import Session

from bot.accounts.models import Account, Contact
from bot.audit.models import AuditEvent
from bot.content_gaps.collect import clean_question, collect_questions
from bot.conversations.models import Conversation, Message
from bot.handoff.models import Ticket
from bot.reports.queries import KB_NO_ANSWER_REPLIES, ReportPeriod

NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
PERIOD = ReportPeriod.last(30, now=NOW)
UNKNOWN = KB_NO_ANSWER_REPLIES[0]
HELPFUL_BUTTONS = {"Yes, that helped": "/feedback_helpful", "No, not really": "/feedback_unhelpful"}


def at(day: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, 10, minute, tzinfo=dt.UTC)


def cite(article_id: str) -> dict[str, Any]:
    return {"citation": {"article_id": article_id, "title": article_id, "score": 0.8}}


class Chat:
    """Writes one conversation's rows with explicit times."""

    def __init__(self, session: Session, name: str, *, contact: Contact | None = None) -> None:
        self.session, self.name = session, name
        session.add(
            Conversation(
                id=name,
                created_at=at(1),
                updated_at=at(1),
                contact_id=contact.id if contact else None,
            )
        )
        session.flush()

    def customer(self, text: str, when: dt.datetime, *, button: str | None = None) -> Chat:
        payload = {"button_payload": button} if button else None
        return self._add("customer", text, when, payload)

    def bot(
        self,
        text: str,
        when: dt.datetime,
        *,
        payload: dict[str, Any] | None = None,
        status: str = "delivered",
    ) -> Chat:
        return self._add("bot", text, when, payload, status)

    def feedback(self, when: dt.datetime, *, helpful: bool, article_id: str | None) -> Chat:
        self.session.add(
            AuditEvent(
                at=when,
                actor="action_server",
                action="kb.feedback",
                conversation_id=self.name,
                details={"article_id": article_id, "outcome": "answered", "helpful": helpful},
            )
        )
        self.session.flush()
        return self

    def _add(
        self,
        role: str,
        text: str,
        when: dt.datetime,
        payload: dict[str, Any] | None,
        status: str = "delivered",
    ) -> Chat:
        self.session.add(
            Message(
                conversation_id=self.name,
                role=role,
                text=text,
                payload=payload,
                status=status,
                created_at=when,
            )
        )
        self.session.flush()
        return self


def texts(session: Session, **kwargs: Any) -> list[tuple[str, str, str | None]]:
    collected = collect_questions(session, period=PERIOD, **kwargs)
    return [(q.text, q.kind, q.article_id) for q in collected.questions]


def test_unanswered_questions_most_recent_first(session: Session) -> None:
    (
        Chat(session, "a")
        .customer("Do you sell gift wrap?", at(10))
        .bot(UNKNOWN, at(10, 1))
        .customer("Can I pay in yen", at(11))
        .bot(KB_NO_ANSWER_REPLIES[1], at(11, 1))
    )
    Chat(session, "b").customer("Where are my trousers?", at(12)).bot("Here you go", at(12, 1))
    session.commit()

    collected = collect_questions(session, period=PERIOD)

    assert [(q.text, q.kind) for q in collected.questions] == [
        ("Can I pay in yen", "unanswered"),
        ("Do you sell gift wrap?", "unanswered"),
    ]
    question = collected.questions[0]
    assert (question.conversation_id, question.asked_at) == ("a", at(11))
    assert (collected.found, collected.truncated) == (2, False)


def test_taps_commands_withheld_replies_and_other_periods_are_left_out(session: Session) -> None:
    Chat(session, "tap").customer("Talk to a person", at(10), button="/request_human").bot(
        UNKNOWN, at(10, 1)
    )
    Chat(session, "command").customer("/restart", at(10)).bot(UNKNOWN, at(10, 1))
    Chat(session, "withheld").customer("Are you there?", at(10)).bot(
        UNKNOWN, at(10, 1), status="withheld"
    )
    Chat(session, "old").customer("Ancient question", dt.datetime(2026, 9, 1, tzinfo=dt.UTC)).bot(
        UNKNOWN, dt.datetime(2026, 9, 1, 0, 1, tzinfo=dt.UTC)
    )
    Chat(session, "kept").customer("Do you ship to Mars?", at(15)).bot(UNKNOWN, at(15, 1))
    session.commit()

    assert texts(session) == [("Do you ship to Mars?", "unanswered", None)]


def test_questions_asked_while_an_agent_owned_the_conversation_are_left_out(
    session: Session,
) -> None:
    chat = Chat(session, "owned")
    chat.customer("Before the agent: gift wrap?", at(10)).bot(UNKNOWN, at(10, 1))
    chat.customer("During the agent: reindeer?", at(11)).bot(UNKNOWN, at(11, 1))
    chat.customer("After the agent: saddles?", at(13)).bot(UNKNOWN, at(13, 1))
    session.add(
        Ticket(
            conversation_id="owned",
            status="resolved",
            reason_code="kb_no_answer",
            reason="no answer",
            created_at=at(10, 5),
            assigned_at=at(10, 30),
            closed_at=at(12),
        )
    )
    session.commit()

    assert [text for text, _, _ in texts(session)] == [
        "After the agent: saddles?",
        "Before the agent: gift wrap?",
    ]


def test_negative_feedback_finds_the_question_behind_the_answer(session: Session) -> None:
    (
        Chat(session, "fb")
        .customer("how much to send a parcel to Mars", at(10))
        .bot("Delivery costs 4 euros.", at(10, 1), payload=cite("delivery-costs"))
        .customer("No, not really", at(10, 2), button=HELPFUL_BUTTONS["No, not really"])
        .feedback(at(10, 3), helpful=False, article_id="delivery-costs")
    )
    (
        Chat(session, "happy")
        .customer("how much is delivery", at(11))
        .bot("Delivery costs 4 euros.", at(11, 1), payload=cite("delivery-costs"))
        .feedback(at(11, 3), helpful=True, article_id="delivery-costs")
    )
    session.commit()

    assert texts(session) == [("how much to send a parcel to Mars", "unhelpful", "delivery-costs")]


def test_feedback_after_a_suggestion_tap_goes_back_to_the_typed_question(session: Session) -> None:
    (
        Chat(session, "suggested")
        .customer("my refund is partial??", at(10))
        .bot("Did you mean one of these?", at(10, 1))
        .customer(
            "Partial refunds",
            at(10, 2),
            button='/choose_article{"article_id":"refunds-partial-refund"}',
        )
        .bot("About partial refunds...", at(10, 3), payload=cite("refunds-partial-refund"))
        .customer("Later question, answered", at(10, 4))
        .bot("Delivery costs 4 euros.", at(10, 5), payload=cite("delivery-costs"))
        .feedback(at(10, 6), helpful=False, article_id="refunds-partial-refund")
    )
    # Feedback naming an article no reply cited: no question can be found.
    Chat(session, "nothing").customer("Hello?", at(11)).feedback(
        at(11, 1), helpful=False, article_id="x"
    )
    session.commit()

    collected = collect_questions(session, period=PERIOD)

    assert [(q.text, q.article_id) for q in collected.questions] == [
        ("my refund is partial??", "refunds-partial-refund")
    ]
    assert collected.found == 2  # both negative feedback events were found


def test_the_cap_keeps_the_most_recent_and_says_so(session: Session) -> None:
    chat = Chat(session, "many")
    for number in range(6):
        chat.customer(f"Question number {number}", at(10, number * 2)).bot(
            UNKNOWN, at(10, number * 2 + 1)
        )
    session.commit()

    collected = collect_questions(session, period=PERIOD, limit=4)

    assert [q.text for q in collected.questions] == [f"Question number {n}" for n in (5, 4, 3, 2)]
    assert (collected.found, collected.limit, collected.truncated) == (6, 4, True)
    with pytest.raises(ValueError, match="limit"):
        collect_questions(session, period=PERIOD, limit=0)


def test_contacts_and_segments_come_with_the_question(session: Session) -> None:
    account = Account(number="B-1", name="Acme", segment="b2b", tier="standard")
    session.add(account)
    session.flush()
    contact = Contact(account_id=account.id, name="Ann", email="ann@example.com")
    session.add(contact)
    session.flush()
    Chat(session, "biz", contact=contact).customer("Net 60 terms?", at(10)).bot(UNKNOWN, at(10, 1))
    session.commit()

    (question,) = collect_questions(session, period=PERIOD).questions

    assert (question.contact_id, question.segment) == (contact.id, "b2b")


def test_junk_is_dropped_and_long_text_cut(session: Session) -> None:
    chat = Chat(session, "junk")
    # No NUL here: PostgreSQL refuses it in text (clean_question drops it, tested below).
    chat.customer("\x01\x02\x03 \x7f\ufffd\ufffd", at(10)).bot(UNKNOWN, at(10, 1))
    chat.customer("%%%% 1234 $$$$ ////", at(11)).bot(UNKNOWN, at(11, 1))
    chat.customer("Why " + "very " * 200 + "long?", at(12)).bot(UNKNOWN, at(12, 1))
    session.commit()

    (question,) = collect_questions(session, period=PERIOD).questions

    assert question.text.startswith("Why very very") and question.text.endswith("…")
    assert 290 <= len(question.text) <= 300


def test_clean_question() -> None:
    assert clean_question("  Where\u200b is\tmy\n parcel?\x00 ") == "Where is my parcel?"
    assert clean_question("/request_human") is None
    assert clean_question("?") is None
    assert clean_question("12345 678") is None
    assert clean_question("ＷＨＥＲＥ is it") == "WHERE is it"  # NFKC
    assert (
        clean_question("<script>alert(1)</script>") == "<script>alert(1)</script>"
    )  # escaped on output
