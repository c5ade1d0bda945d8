"""Builders for rasa-sdk ``Tracker`` objects, shaped like the ones Rasa 3.6 sends.

Usage:
    from tests.helpers.trackers import bot, build_tracker, slot, user

    tracker = build_tracker(
        [
            user("where is my parcel?", "ask_question", 0.93),
            bot(response="utter_kb_unknown"),
            user("yes", "affirm"),
        ]
    )
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from rasa_sdk import Tracker

DEFAULT_SENDER = "conversation-1"
DEFAULT_CHANNEL = "rest"

_clock = [1_760_000_000.0]


def _timestamp() -> float:
    _clock[0] += 1.0
    return _clock[0]


def entity(
    name: str, value: str, *, start: int = 0, extractor: str = "DIETClassifier"
) -> dict[str, Any]:
    """Return an entity as Rasa puts it in ``parse_data``."""
    return {
        "entity": name,
        "value": value,
        "start": start,
        "end": start + len(value),
        "confidence_entity": 0.99,
        "extractor": extractor,
    }


def parse_data(
    text: str,
    intent: str,
    confidence: float = 1.0,
    entities: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """Return NLU parse data (the ``latest_message`` shape)."""
    return {
        "text": text,
        "intent": {"name": intent, "confidence": confidence},
        "entities": list(entities),
        "intent_ranking": [{"name": intent, "confidence": confidence}],
    }


def user(
    text: str,
    intent: str,
    confidence: float = 1.0,
    entities: Sequence[dict[str, Any]] = (),
    *,
    input_channel: str = DEFAULT_CHANNEL,
) -> dict[str, Any]:
    """Return a ``user`` event."""
    return {
        "event": "user",
        "timestamp": _timestamp(),
        "text": text,
        "parse_data": parse_data(text, intent, confidence, entities),
        "input_channel": input_channel,
        "message_id": f"m{int(_clock[0])}",
        "metadata": {},
    }


def bot(
    text: str | None = None,
    *,
    response: str | None = None,
    buttons: Sequence[dict[str, Any]] | None = None,
    custom: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return a ``bot`` event; ``response`` becomes ``metadata.utter_action`` as in Rasa."""
    metadata: dict[str, Any] = {}
    if response is not None:
        metadata["utter_action"] = response
    return {
        "event": "bot",
        "timestamp": _timestamp(),
        "text": text,
        "data": {
            "elements": None,
            "quick_replies": None,
            "buttons": list(buttons) if buttons else None,
            "attachment": None,
            "image": None,
            "custom": custom,
        },
        "metadata": metadata,
    }


def action(name: str) -> dict[str, Any]:
    """Return an ``action`` event."""
    return {
        "event": "action",
        "timestamp": _timestamp(),
        "name": name,
        "policy": None,
        "confidence": None,
    }


def slot(name: str, value: Any) -> dict[str, Any]:
    """Return a ``slot`` event."""
    return {"event": "slot", "timestamp": _timestamp(), "name": name, "value": value}


def session_start() -> list[dict[str, Any]]:
    """Return the events Rasa writes when a session starts."""
    return [
        action("action_session_start"),
        {"event": "session_started", "timestamp": _timestamp()},
        action("action_listen"),
    ]


def build_tracker(
    events: Iterable[dict[str, Any]] = (),
    *,
    slots: dict[str, Any] | None = None,
    sender_id: str = DEFAULT_SENDER,
    latest_action_name: str = "action_listen",
) -> Tracker:
    """Build a tracker from events, the way Rasa serialises one for the action server.

    Slots are the values set by ``slot`` events, overridden by ``slots``; the latest
    message is the parse data of the last ``user`` event.
    """
    event_list = list(events)
    current_slots: dict[str, Any] = {}
    latest_message: dict[str, Any] = {}
    for event in event_list:
        if event["event"] == "slot":
            current_slots[event["name"]] = event["value"]
        elif event["event"] == "user":
            latest_message = dict(event["parse_data"])
            latest_message["message_id"] = event.get("message_id")
            latest_message["metadata"] = event.get("metadata", {})
    current_slots.update(slots or {})
    return Tracker.from_dict(
        tracker_state(event_list, current_slots, latest_message, sender_id, latest_action_name)
    )


def tracker_state(
    events: list[dict[str, Any]],
    slots: dict[str, Any],
    latest_message: dict[str, Any],
    sender_id: str = DEFAULT_SENDER,
    latest_action_name: str = "action_listen",
) -> dict[str, Any]:
    """Return the JSON tracker state Rasa posts to the action server."""
    return {
        "sender_id": sender_id,
        "slots": slots,
        "latest_message": latest_message,
        "latest_event_time": time.time(),
        "followup_action": None,
        "paused": False,
        "events": events,
        "latest_input_channel": DEFAULT_CHANNEL,
        "active_loop": {},
        "latest_action": {"action_name": latest_action_name},
        "latest_action_name": latest_action_name,
    }


def conversation(*turns: tuple[str, str] | dict[str, Any]) -> list[dict[str, Any]]:
    """Return session-start events followed by the given events or ``(text, intent)`` turns."""
    events = session_start()
    for turn in turns:
        if isinstance(turn, tuple):
            events.append(user(*turn))
        else:
            events.append(turn)
    return events
