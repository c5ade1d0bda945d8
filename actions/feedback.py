"""Record "did that help?" feedback on the last knowledge-base answer.

``action_record_feedback`` writes a ``kb.feedback`` audit event (actor
``action_server``) with the answered article, whether it helped and the search
outcome. It never replies itself: the rules follow it with ``utter_glad_it_helped``
or ``utter_sorry_offer_human``. A database error is logged and otherwise ignored, so
the customer's conversation carries on.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import deps

__all__ = ["FEEDBACK_AUDIT_ACTION", "ActionRecordFeedback"]

logger = logging.getLogger(__name__)

FEEDBACK_AUDIT_ACTION = "kb.feedback"
ACTOR_ACTION_SERVER = "action_server"


def _record(
    session_factory: deps.SessionFactory, conversation_id: str, details: dict[str, Any]
) -> None:
    from bot.audit.service import record_event
    from bot.conversations.service import ensure_conversation

    with session_factory() as session:
        ensure_conversation(session, conversation_id=conversation_id)
        record_event(
            session,
            actor=ACTOR_ACTION_SERVER,
            action=FEEDBACK_AUDIT_ACTION,
            conversation_id=conversation_id,
            details=details,
        )
        session.commit()


class ActionRecordFeedback(Action):
    """Store whether the last answer helped."""

    def name(self) -> str:
        """Return the action's name."""
        return "action_record_feedback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        """Write a ``kb.feedback`` audit event for ``kb_last_article_id``."""
        helpful = tracker.get_intent_of_latest_message() == "feedback_helpful"
        details = {
            "article_id": tracker.get_slot("kb_last_article_id"),
            "outcome": tracker.get_slot("kb_last_outcome"),
            "helpful": helpful,
        }
        logger.info(
            "Feedback conversation=%s article=%s helpful=%s",
            tracker.sender_id,
            details["article_id"],
            helpful,
        )
        try:
            session_factory = deps.get_session_factory()
            await asyncio.to_thread(_record, session_factory, tracker.sender_id, details)
        except Exception:
            logger.exception("Could not record feedback conversation=%s", tracker.sender_id)
        return []
