"""action_record_feedback has the bot service write an audit event, and never replies."""

from __future__ import annotations

import logging

import pytest
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from actions import deps
from actions.feedback import ActionRecordFeedback
from bot.audit.models import AuditEvent
from tests.helpers.trackers import build_tracker, conversation, slot, user
from tests.unit.actions.support import unreachable_bot_service

SENDER = "conversation-feedback"


def feedback_tracker(intent: str):
    return build_tracker(
        conversation(
            user("how long do refunds take?", "ask_question", 0.9),
            slot("kb_last_query", "how long do refunds take?"),
            slot("kb_last_article_id", "refunds-timing"),
            slot("kb_last_outcome", "answered"),
            user(f"/{intent}", intent, 1.0),
        ),
        sender_id=SENDER,
    )


@pytest.mark.parametrize(
    ("intent", "helpful"), [("feedback_helpful", True), ("feedback_unhelpful", False)]
)
async def test_feedback_is_audited(
    session_factory: sessionmaker[Session], intent: str, helpful: bool
) -> None:
    dispatcher = CollectingDispatcher()

    events = await ActionRecordFeedback().run(dispatcher, feedback_tracker(intent), {})

    assert events == []
    assert dispatcher.messages == []
    with session_factory() as session:
        [event] = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "kb.feedback")
        ).all()
    assert event.actor == "action_server"
    assert event.conversation_id == SENDER
    assert event.details == {
        "article_id": "refunds-timing",
        "outcome": "answered",
        "helpful": helpful,
    }


async def test_bot_service_down_is_logged_and_the_conversation_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    deps.set_bot_service(unreachable_bot_service())
    caplog.set_level(logging.ERROR, logger="actions.feedback")
    dispatcher = CollectingDispatcher()

    events = await ActionRecordFeedback().run(dispatcher, feedback_tracker("feedback_helpful"), {})

    assert events == []
    assert dispatcher.messages == []
    [record] = caplog.records
    assert f"conversation={SENDER}" in record.getMessage()
