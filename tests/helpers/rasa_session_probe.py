"""Run in Rasa's environment (.venv-rasa): a conversation handed back after a long wait.

Loads the trained model with the bounded tracker store, identifies a business customer
(the slots verification sets), lets an agent take over (``pause``) and hand back
(``resume`` and the handoff slots cleared, as ``bot.rasa_client.RasaClient.resume``
sends them), moves the clock two hours on, and sends the next message. Prints the new
session's state as JSON.

Usage (from the project root):
    .venv-rasa/bin/python tests/helpers/rasa_session_probe.py MODEL TMP_DIR
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from rasa.core.agent import Agent
from rasa.shared.core.events import ConversationPaused, ConversationResumed, SessionStarted, SlotSet

from rasa_addons.tracker_store import BoundedSQLTrackerStore

SENDER = "c-long-wait"
IDENTITY = {
    "customer_email": "emma.clarke@example.com",
    "customer_name": "Emma Clarke",
    "customer_segment": "b2b",
    "account_name": "Clarke Interiors GmbH",
}
WAIT_SECONDS = 2 * 3600


async def append(agent: Agent, events: list[Any]) -> None:
    """Append events as Rasa's HTTP API does (fetch, update, save)."""
    tracker = await agent.processor.fetch_tracker_with_initial_session(SENDER)
    for event in events:
        tracker.update(event, agent.domain)
    await agent.tracker_store.save(tracker)


async def main(model: str, tmp: Path) -> dict[str, Any]:
    agent = Agent.load(model)
    store = BoundedSQLTrackerStore(
        agent.domain, dialect="sqlite", db=str(tmp / "tracker.db"), max_events=20
    )
    agent.tracker_store = store
    agent.processor.tracker_store = store
    session_minutes = agent.domain.session_config.session_expiration_time
    carry_over = agent.domain.session_config.carry_over_slots

    for _ in range(12):  # a long first session: the bounded store cuts it
        await agent.handle_text("hello", sender_id=SENDER)
    await append(agent, [SlotSet(name, value) for name, value in IDENTITY.items()])
    await append(agent, [SlotSet("handoff_requested", True), SlotSet("handoff_id", 7)])
    await append(agent, [ConversationPaused()])  # an agent claims the ticket
    await append(  # ... and hands the conversation back
        agent,
        [
            ConversationResumed(),
            SlotSet("handoff_requested", False),
            SlotSet("handoff_id", None),
        ],
    )

    real_time = time.time
    time.time = lambda: real_time() + WAIT_SECONDS  # the customer answers two hours later
    try:
        replies = await agent.handle_text("hello", sender_id=SENDER)
    finally:
        time.time = real_time

    tracker = await store.retrieve(SENDER)
    full = await store.retrieve_full_tracker(SENDER)
    assert tracker is not None and full is not None
    return {
        "session_expiration_minutes": session_minutes,
        "carry_over_slots": carry_over,
        "sessions": sum(isinstance(e, SessionStarted) for e in full.events),
        "slots": {name: tracker.get_slot(name) for name in [*IDENTITY, "handoff_requested"]},
        "paused": tracker.is_paused(),
        "replies": [reply.get("text") for reply in replies or []],
        "events_given_to_rasa": len(tracker.events),
    }


if __name__ == "__main__":
    result = asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
    sys.stdout.write(json.dumps(result, default=str) + "\n")
