"""Hand the conversation over to a person, with everything the bot learned so far.

``action_handoff_to_human`` asks the bot service (through its internal API, see
``actions/clients/bot_api.py``) to open or refresh the conversation's ticket, with a
context the agent can read at a glance, built from this session's events only:

* ``reason`` / ``reason_code``: why the customer is handed over, read from the last
  thing the bot said (e.g. ``utter_kb_unknown`` → "knowledge base had no answer");
* ``turns``: the last user turns with intent, confidence and entities;
* ``knowledge``: every knowledge-base attempt (query, outcome, answered article),
  the articles offered as suggestions and the articles answered with a citation;
* ``customer``: the identity slots; ``channel``: the latest input channel.

The reply is ``utter_handoff_queued`` with an honest word on when a person can answer
(``utter_handoff_already_queued`` if the conversation already had an open ticket,
whose context is then refreshed while its first reason is kept) plus ``json_message``
``{"handoff": {"id": ..., "team": ...}}`` for the web chat.

``action_withdraw_handoff`` closes a ticket still waiting in the queue when the
customer says they no longer need a person.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, TypedDict

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import deps
from actions.clients.bot_api import BotServiceError

__all__ = [
    "DEFAULT_TEAM_NAME",
    "MAX_TURNS",
    "ActionHandoffToHuman",
    "ActionWithdrawHandoff",
    "HandoffContext",
    "build_handoff_context",
    "handoff_reason",
]

logger = logging.getLogger(__name__)

DEFAULT_TEAM_NAME = "Customer Care"
MAX_TURNS = 10
MAX_TEXT_CHARS = 500
_CHOOSE_ARTICLE_PREFIX = "/choose_article"

# Last bot response before the hand-off request → (reason code, short reason).
_REASONS_BY_RESPONSE: dict[str, tuple[str, str]] = {
    "utter_kb_unknown": ("kb_no_answer", "knowledge base had no answer"),
    "utter_kb_suggestions": ("kb_unsure", "knowledge base was unsure and suggested articles"),
    "utter_kb_unavailable": ("kb_unavailable", "knowledge base was unavailable"),
    "utter_sorry_offer_human": ("unhelpful_answer", "customer said an answer did not help"),
    "utter_out_of_scope": ("out_of_scope", "request outside what the assistant covers"),
}
_CUSTOMER_REQUEST = ("customer_request", "customer asked for a human")
_OFFER_ACCEPTED = ("offer_accepted", "customer accepted the offer of a person")
# Reasons the turn itself names (an entity set by the bot service or a follow-up action).
_NAMED_REASONS: dict[str, tuple[str, str]] = {
    "frustration": ("frustration", "customer sounded frustrated"),
    "repeated_no_answer": ("repeated_no_answer", "two questions in a row had no answer"),
}
_NEGATIVE_FEEDBACK = ("negative_feedback", "customer said an answer did not help")


class TurnSummary(TypedDict):
    """One user turn as the agent sees it."""

    text: str
    intent: str | None
    confidence: float | None
    entities: list[dict[str, Any]]


class KnowledgeAttempt(TypedDict):
    """One knowledge-base try: the query (``None`` for a picked suggestion) and its outcome."""

    query: str | None
    outcome: str | None
    article_id: str | None


class KnowledgeSummary(TypedDict):
    """What the knowledge base tried in this session."""

    attempts: list[KnowledgeAttempt]
    articles_offered: list[str]
    articles_answered: list[str]


class CustomerSummary(TypedDict):
    """The identity slots."""

    name: str | None
    email: str | None
    account_number: str | None
    account_name: str | None
    order_number: str | None
    segment: str | None


class HandoffContext(TypedDict):
    """The JSON-ready context stored with the handoff for the agent."""

    reason: str
    reason_code: str
    channel: str | None
    latest_message: str | None
    turns: list[TurnSummary]
    knowledge: KnowledgeSummary
    customer: CustomerSummary


def _session_events(tracker: Tracker) -> list[dict[str, Any]]:
    """Return the events after the latest ``session_started`` (or restart)."""
    events = tracker.events or []
    start = 0
    for position, event in enumerate(events):
        if event.get("event") in ("session_started", "restart"):
            start = position + 1
    return list(events[start:])


def _clip(text: str | None) -> str:
    text = text or ""
    return text if len(text) <= MAX_TEXT_CHARS else text[: MAX_TEXT_CHARS - 1] + "…"


def _turn(event: dict[str, Any]) -> TurnSummary:
    parse_data = event.get("parse_data") or {}
    intent = parse_data.get("intent") or {}
    confidence = intent.get("confidence")
    entities = [
        {"entity": entity.get("entity"), "value": entity.get("value")}
        for entity in parse_data.get("entities") or []
    ]
    return {
        "text": _clip(event.get("text")),
        "intent": intent.get("name"),
        "confidence": round(float(confidence), 3) if confidence is not None else None,
        "entities": entities,
    }


def _chosen_article_id(payload: str) -> str | None:
    try:
        value = json.loads(payload[len(_CHOOSE_ARTICLE_PREFIX) :])
    except ValueError:
        return None
    article_id = value.get("article_id") if isinstance(value, dict) else None
    return str(article_id) if article_id else None


@dataclass
class _KnowledgeCollector:
    attempts: list[KnowledgeAttempt]
    offered: list[str]
    answered: list[str]
    current: KnowledgeAttempt | None = None

    def slot(self, name: str, value: Any) -> None:
        if name == "kb_last_query":
            self.current = {"query": value, "outcome": None, "article_id": None}
            self.attempts.append(self.current)
        elif name == "kb_last_article_id":
            if self.current is None:  # a suggestion picked by button: no new query
                self.current = {"query": None, "outcome": None, "article_id": None}
                self.attempts.append(self.current)
            self.current["article_id"] = value
        elif name == "kb_last_outcome" and self.current is not None:
            self.current["outcome"] = value
            self.current = None

    def bot(self, event: dict[str, Any]) -> None:
        data = event.get("data") or {}
        for button in data.get("buttons") or []:
            payload = str(button.get("payload") or "")
            if payload.startswith(_CHOOSE_ARTICLE_PREFIX):
                article_id = _chosen_article_id(payload)
                if article_id and article_id not in self.offered:
                    self.offered.append(article_id)
        cited = ((data.get("custom") or {}).get("citation") or {}).get("article_id")
        if cited and cited not in self.answered:
            self.answered.append(str(cited))


def handoff_reason(tracker: Tracker) -> tuple[str, str]:
    """Return ``(reason_code, reason)`` for handing this conversation over.

    The last bot response before the latest user message decides (see
    ``_REASONS_BY_RESPONSE``); otherwise it is the customer's own request, or their
    "yes" to an offer of a person.

    Args:
        tracker: The conversation.

    Returns:
        A short machine code and a short human reason.
    """
    named = next(tracker.get_latest_entity_values("handoff_reason"), None)
    if named in _NAMED_REASONS:
        return _NAMED_REASONS[str(named)]
    intent = (tracker.latest_message.get("intent") or {}).get("name")
    if intent == "feedback_unhelpful":
        return _NEGATIVE_FEEDBACK
    if tracker.get_slot("kb_unknown_streak") and float(tracker.get_slot("kb_unknown_streak")) >= 2:
        return _NAMED_REASONS["repeated_no_answer"]
    events = _session_events(tracker)
    last_user = max(
        (position for position, event in enumerate(events) if event.get("event") == "user"),
        default=len(events),
    )
    for event in reversed(events[:last_user]):
        if event.get("event") == "user":
            break
        if event.get("event") == "bot":
            response = (event.get("metadata") or {}).get("utter_action")
            if response in _REASONS_BY_RESPONSE:
                return _REASONS_BY_RESPONSE[response]
    return _CUSTOMER_REQUEST if intent == "request_human" else _OFFER_ACCEPTED


def build_handoff_context(tracker: Tracker) -> HandoffContext:
    """Collect what the agent needs to take over without asking again.

    Args:
        tracker: The conversation.

    Returns:
        The JSON-ready context (see the module docstring).
    """
    events = _session_events(tracker)
    turns = [_turn(event) for event in events if event.get("event") == "user"][-MAX_TURNS:]
    knowledge = _KnowledgeCollector(attempts=[], offered=[], answered=[])
    for event in events:
        if event.get("event") == "slot":
            knowledge.slot(str(event.get("name")), event.get("value"))
        elif event.get("event") == "bot":
            knowledge.bot(event)
    reason_code, reason = handoff_reason(tracker)
    slot = tracker.get_slot
    return {
        "reason": reason,
        "reason_code": reason_code,
        "channel": tracker.get_latest_input_channel(),
        "latest_message": _clip(tracker.latest_message.get("text")) or None,
        "turns": turns,
        "knowledge": {
            "attempts": knowledge.attempts,
            "articles_offered": knowledge.offered,
            "articles_answered": knowledge.answered,
        },
        "customer": {
            "name": slot("customer_name"),
            "email": slot("customer_email"),
            "account_number": slot("account_number"),
            "account_name": slot("account_name"),
            "order_number": slot("order_number"),
            "segment": slot("customer_segment"),
        },
    }


class ActionHandoffToHuman(Action):
    """Queue the conversation for a person and tell the customer honestly what happens next."""

    def name(self) -> str:
        """Return the action's name."""
        return "action_handoff_to_human"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        """Open the ticket with the conversation's context and confirm it to the customer."""
        context = build_handoff_context(tracker)
        try:
            opened = await deps.get_bot_service().open_handoff(
                conversation_id=tracker.sender_id,
                reason_code=context["reason_code"],
                reason=context["reason"],
                context=dict(context),
                channel=context["channel"],
            )
        except BotServiceError as exc:
            logger.error(
                "Could not open a ticket conversation=%s: %s", tracker.sender_id, exc.message
            )
            dispatcher.utter_message(response="utter_handoff_failed")
            return []

        response = "utter_handoff_already_queued" if opened.already_open else "utter_handoff_queued"
        dispatcher.utter_message(
            response=response,
            json_message={"handoff": {"id": opened.ticket_id, "team": opened.team_name}},
            team_name=opened.team_name or DEFAULT_TEAM_NAME,
            wait_message=opened.wait_message,
        )
        logger.info(
            "Ticket %s conversation=%s ticket=%s reason=%s",
            "refreshed" if opened.already_open else "opened",
            tracker.sender_id,
            opened.ticket_id,
            context["reason_code"],
        )
        return [
            SlotSet("handoff_id", str(opened.ticket_id)),
            SlotSet("handoff_requested", True),
            SlotSet("kb_unknown_streak", 0.0),
        ]


class ActionWithdrawHandoff(Action):
    """The customer no longer needs a person: close the queued ticket."""

    def name(self) -> str:
        """Return the action's name."""
        return "action_withdraw_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        """Withdraw the queued ticket, if any, and say so."""
        try:
            result = await deps.get_bot_service().withdraw_handoff(
                conversation_id=tracker.sender_id
            )
        except BotServiceError as exc:
            logger.error(
                "Could not withdraw a ticket conversation=%s: %s", tracker.sender_id, exc.message
            )
            dispatcher.utter_message(response="utter_handoff_failed")
            return []
        if not result.withdrawn:
            dispatcher.utter_message(response="utter_anything_else")
            return []
        dispatcher.utter_message(response="utter_handoff_withdrawn")
        return [SlotSet("handoff_id", None), SlotSet("handoff_requested", False)]
