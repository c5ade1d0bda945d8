"""Record "did that help?" feedback on the last knowledge-base answer.

``action_record_feedback`` asks the bot service to store a ``kb.feedback`` audit event
with the answered article, whether it helped and the search outcome. It never replies
itself: the rules follow it with ``utter_glad_it_helped``, or hand the conversation to
a person after negative feedback. A failure is logged and otherwise ignored, so the
customer's conversation carries on.
"""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import deps
from actions.clients.bot_api import BotServiceError

__all__ = ["ActionRecordFeedback"]

logger = logging.getLogger(__name__)


class ActionRecordFeedback(Action):
    """Store whether the last answer helped."""

    def name(self) -> str:
        """Return the action's name."""
        return "action_record_feedback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        """Store whether the answer for ``kb_last_article_id`` helped."""
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
            await deps.get_bot_service().record_feedback(
                conversation_id=tracker.sender_id,
                article_id=details["article_id"],
                outcome=details["outcome"],
                helpful=helpful,
            )
        except BotServiceError as exc:
            logger.error(
                "Could not record feedback conversation=%s: %s", tracker.sender_id, exc.message
            )
        return []
