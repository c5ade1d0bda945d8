"""Run in Rasa's environment (.venv-rasa, Python 3.10): drive BoundedSQLTrackerStore beside
Rasa's own SQLTrackerStore through one long conversation, and print what differs as JSON.

Usage (from the project root):
    .venv-rasa/bin/python tests/helpers/rasa_tracker_store_probe.py TMP_DIR MAX_EVENTS TURNS
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    ConversationPaused,
    ConversationResumed,
    Event,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker

from rasa_addons.tracker_store import BoundedSQLTrackerStore, snapshots


def turn_events(turn: int) -> list[Event]:
    """One customer turn as Rasa logs it (a knowledge question), with a few state changes."""
    events: list[Event] = [
        UserUttered(f"question {turn}", {"name": "ask_question", "confidence": 0.9}),
        ActionExecuted("action_answer_from_knowledge"),
        BotUttered(f"answer {turn}", {"custom": {"citation": {"article_id": f"a{turn}"}}}),
        SlotSet("kb_attempts", float(turn)),
        SlotSet("kb_last_outcome", ["answered", "suggested", "unknown"][turn % 3]),
    ]
    if turn == 3:
        events.append(SlotSet("customer_segment", "b2b"))
        events.append(SlotSet("customer_email", "emma.clarke@example.com"))
    if turn == 20:  # an agent takes over ...
        events.append(ConversationPaused())
    if turn == 24:  # ... and hands back
        events.append(ConversationResumed())
    if turn == 30:
        events.append(SlotSet("customer_email", None))
    events.append(ActionExecuted("action_listen"))
    return events


# Increasing timestamps: Rasa's SQL store finds a session's events by timestamp.
_clock = itertools.count()
_BASE = time.time() - 3600


def stamped(event: Event) -> Event:
    event.timestamp = _BASE + next(_clock) * 0.001
    return event


def comparable(events: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.as_dict().items() if k != "timestamp"} for e in events]


async def main(tmp: Path, max_events: int, turns: int) -> dict[str, Any]:
    domain = Domain.load("domain.yml")
    bounded = BoundedSQLTrackerStore(
        domain, dialect="sqlite", db=str(tmp / "bounded.db"), max_events=max_events
    )
    reference = SQLTrackerStore(domain, dialect="sqlite", db=str(tmp / "reference.db"))
    report: list[dict[str, Any]] = []
    for turn in range(turns):
        for store in (bounded, reference):
            tracker = await store.retrieve("c-1")
            if tracker is None:
                tracker = DialogueStateTracker("c-1", domain.slots)
                # As Rasa logs a session start: the action's ActionExecuted is created
                # after the SessionStarted it returned, so it carries a later timestamp.
                started = stamped(SessionStarted())
                tracker.update(stamped(ActionExecuted("action_session_start")))
                tracker.update(started)
                tracker.update(stamped(ActionExecuted("action_listen")))
                await store.save(tracker)
            first = [stamped(event) for event in turn_events(turn)]
            tracker.update(first[0])
            await store.save(tracker)  # Rasa saves after logging the message ...
            for event in first[1:]:
                tracker.update(event)
            await store.save(tracker)  # ... and after the turn's actions
        got = await bounded.retrieve("c-1")
        want = await reference.retrieve("c-1")
        assert got is not None and want is not None
        report.append(
            {
                "turn": turn,
                "events": len(got.events),
                "reference_events": len(want.events),
                "slots_equal": got.current_slot_values() == want.current_slot_values(),
                "paused_equal": got.is_paused() == want.is_paused(),
                "paused": got.is_paused(),
                "last_turn_equal": comparable(list(got.events)[-8:])
                == comparable(list(want.events)[-8:]),
                "latest_message_equal": got.latest_message.text == want.latest_message.text,
                "snapshot_rows": snapshot_rows(bounded),
            }
        )
    full_got = await bounded.retrieve_full_tracker("c-1")
    full_want = await reference.retrieve_full_tracker("c-1")
    return {
        "turns": report,
        "full_equal": comparable(full_got.events) == comparable(full_want.events),
        "slots": (await bounded.retrieve("c-1")).current_slot_values(),
        "age": await age_pruning(tmp, domain),
    }


def snapshot_rows(store: BoundedSQLTrackerStore) -> int:
    with store.engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(snapshots)).scalar())


async def age_pruning(tmp: Path, domain: Domain) -> dict[str, Any]:
    """A table from before ``created_at``, old rows and new ones: what a store keeps."""
    path = tmp / "aged.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:  # the table as the previous version created it
        connection.execute(
            sa.text(
                "CREATE TABLE concierge_tracker_snapshots (id INTEGER PRIMARY KEY, "
                "sender_id VARCHAR(255) NOT NULL, event_id INTEGER NOT NULL, state TEXT NOT NULL)"
            )
        )
        connection.execute(
            sa.text(
                "INSERT INTO concierge_tracker_snapshots (sender_id, event_id, state) "
                "VALUES ('legacy', 1, '{}')"
            )
        )
    engine.dispose()
    store = BoundedSQLTrackerStore(
        domain, dialect="sqlite", db=str(path), max_events=30, snapshot_max_age_hours=1
    )
    with store.engine.begin() as connection:
        connection.execute(
            snapshots.insert(),
            [
                {
                    "sender_id": "old",
                    "event_id": 2,
                    "state": "{}",
                    "created_at": time.time() - 7200,
                },
                {
                    "sender_id": "recent",
                    "event_id": 3,
                    "state": "{}",
                    "created_at": time.time() - 60,
                },
            ],
        )
    before = snapshot_rows(store)
    tracker = DialogueStateTracker("new", domain.slots)
    for event in (ActionExecuted("action_session_start"), SessionStarted(), *turn_events(0)):
        tracker.update(stamped(event))
    await store.save(tracker)  # a tracker Rasa created: saved as Rasa does, no snapshot
    tracker = await store.retrieve("new")
    assert tracker is not None
    for event in turn_events(1):
        tracker.update(stamped(event))
    await store.save(tracker)  # the first save with a snapshot prunes
    with store.engine.connect() as connection:
        senders = sorted(
            row[0] for row in connection.execute(sa.select(snapshots.c.sender_id)).all()
        )
    # A second save within the prune interval does not look again.
    with store.engine.begin() as connection:
        connection.execute(
            snapshots.insert(),
            [{"sender_id": "old-2", "event_id": 4, "state": "{}", "created_at": 0.0}],
        )
    for event in turn_events(2):
        tracker.update(stamped(event))
    await store.save(tracker)
    with store.engine.connect() as connection:
        later = sorted(row[0] for row in connection.execute(sa.select(snapshots.c.sender_id)).all())
    return {"rows_before": before, "senders_after": senders, "senders_later": later}


if __name__ == "__main__":
    folder, limit, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    sys.stdout.write(json.dumps(asyncio.run(main(folder, limit, count)), default=str) + "\n")
