"""A tracker store whose per-turn cost does not grow with the conversation.

Rasa 3.6's ``SQLTrackerStore`` rebuilds a conversation from every event of its current
session on each turn, and Rasa then featurizes all of them and sends all of them to
the action server: a 200-turn conversation (about 2,000 events) costs several times a
10-turn one. :class:`BoundedSQLTrackerStore` keeps every event in the same ``events``
table (the HTTP API's full tracker, exports and analytics see everything), but hands
Rasa at most about ``max_events`` of them:

* after each turn (the tracker ends in ``action_listen``) it stores a **snapshot** of
  the state at that point: the slots that differ from their initial values, the active
  loop and whether the conversation is paused (table ``concierge_tracker_snapshots``);
* on ``retrieve`` it takes the latest snapshot at least ``max_events`` events back in the
  current session, and returns a synthetic session start carrying that state (the events
  Rasa itself writes when a session starts with ``carry_over_slots_to_new_session``),
  followed by every event after the snapshot;
* on ``save`` it appends only the events added since ``retrieve`` (it remembers how many
  events the tracker object had), plus the turn's snapshot.

The snapshot table stays bounded (deleting a snapshot is always safe: without one, a
conversation is read whole, as Rasa does, until the next snapshots are far enough back):

* **per conversation**: the snapshot a retrieve used has the lowest ``event_id`` any later
  retrieve can use (the events it is counted back from only grow), so when the turn's
  snapshot is written the conversation's older ones are deleted: at most about
  ``max_events`` ÷ (events per turn) + 2 rows per conversation (about a dozen);
* **by age**: at most every ``snapshot_prune_seconds`` (10 minutes), rows written more
  than ``snapshot_max_age_hours`` (24) ago are deleted, so conversations that ended leave
  nothing behind. Sessions expire after 60 minutes of silence, and a customer who writes
  again after that starts a new session in which old snapshots are never used; the one
  retrieve that checks the old session's expiry reads it whole.

So the policies (``max_history`` 5) and rules see the last ``max_events`` events exactly
as stored, and the slots, pause and active loop exactly as they were; what they no
longer see is dialogue older than that, as after a session start. Actions get the same
bounded tracker (the handoff context reads its turns from it). Shorter sessions cannot do
this alone: a fast conversation never reaches ``session_expiration_time``.

Rasa loads this class from ``var/run/endpoints.yml`` (``type:
rasa_addons.tracker_store.BoundedSQLTrackerStore``; Rasa puts its working directory, the
project root, on ``sys.path``). It runs in Rasa's Python 3.10 environment and imports
nothing from the app.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from typing import Any

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.constants import ACTION_LISTEN_NAME, ACTION_SESSION_START_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, Event
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.utils.common import all_subclasses

logger = logging.getLogger(__name__)

DEFAULT_MAX_EVENTS = 120
DEFAULT_SNAPSHOT_MAX_AGE_HOURS = 24.0
DEFAULT_SNAPSHOT_PRUNE_SECONDS = 600.0
# How many of a tracker object's events are already in the database (set by retrieve
# and save; a tracker Rasa created itself has none and is saved the way Rasa does).
SAVED_EVENTS_ATTRIBUTE = "_concierge_saved_events"
# The ``event_id`` of the snapshot a retrieve started the tracker from, if any.
BASE_SNAPSHOT_ATTRIBUTE = "_concierge_base_snapshot"

_metadata = sa.MetaData()
snapshots = sa.Table(
    "concierge_tracker_snapshots",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sender_id", sa.String(255), nullable=False),
    # The id (in ``events``) of the last event the snapshot describes the state after.
    sa.Column("event_id", sa.Integer, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    # When the row was written (Unix time); rows of older stores have none and are pruned.
    sa.Column("created_at", sa.Float, nullable=True),
    sa.Index("ix_concierge_tracker_snapshots_sender_event", "sender_id", "event_id"),
    sa.Index("ix_concierge_tracker_snapshots_created_at", "created_at"),
)

_event_types: dict[str, type[Event]] = {}


def deserialise_events(serialised: list[dict[str, Any]]) -> list[Event]:
    """Rasa's ``deserialise_events``, with the event class looked up in a table.

    Rasa finds each event's class by walking every ``Event`` subclass, about 0.2 ms per
    event; this looks it up once per type name.
    """
    if not _event_types:
        for cls in all_subclasses(Event):
            _event_types.setdefault(cls.type_name, cls)
    events: list[Event] = []
    for parameters in serialised:
        name = parameters.get("event")
        cls = _event_types.get(name) if isinstance(name, str) else None
        event = cls._from_parameters(parameters) if cls else Event.from_parameters(parameters)
        if event is not None:
            events.append(event)
    return events


def state_of(tracker: DialogueStateTracker) -> dict[str, Any]:
    """What a snapshot keeps: slots that differ from their initial value, loop, pause."""
    return {
        "slots": {
            name: slot.value
            for name, slot in tracker.slots.items()
            if slot.value != slot.initial_value
        },
        "active_loop": tracker.active_loop_name,
        "paused": tracker.is_paused(),
        "timestamp": tracker.events[-1].timestamp if tracker.events else None,
    }


def session_start_events(state: dict[str, Any]) -> list[dict[str, Any]]:
    """A session start that carries ``state`` over, as serialised events."""
    stamp = {"timestamp": state.get("timestamp")}
    events: list[dict[str, Any]] = [
        {"event": "action", "name": ACTION_SESSION_START_NAME, **stamp},
        {"event": "session_started", **stamp},
    ]
    events += [
        {"event": "slot", "name": name, "value": value, **stamp}
        for name, value in sorted(state.get("slots", {}).items())
    ]
    if state.get("active_loop"):
        events.append({"event": "active_loop", "name": state["active_loop"], **stamp})
    if state.get("paused"):
        events.append({"event": "pause", **stamp})
    events.append({"event": "action", "name": ACTION_LISTEN_NAME, **stamp})
    return events


class BoundedSQLTrackerStore(SQLTrackerStore):
    """Rasa's SQL tracker store, handing Rasa only about the last ``max_events`` events.

    Args:
        domain: The assistant's domain.
        max_events: Roughly how many of the current session's latest events a retrieved
            tracker holds (at least this many, up to one turn more); ``0`` behaves
            exactly like ``SQLTrackerStore``.
        snapshot_max_age_hours: Snapshots older than this are deleted.
        snapshot_prune_seconds: How often (at most) the store looks for old snapshots.
        **kwargs: ``SQLTrackerStore``'s arguments (``dialect``, ``db``, ``host`` …).
    """

    def __init__(
        self,
        domain: Domain | None = None,
        max_events: int = DEFAULT_MAX_EVENTS,
        snapshot_max_age_hours: float = DEFAULT_SNAPSHOT_MAX_AGE_HOURS,
        snapshot_prune_seconds: float = DEFAULT_SNAPSHOT_PRUNE_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(domain, **kwargs)
        self.max_events = int(max_events)
        self.snapshot_max_age_seconds = float(snapshot_max_age_hours) * 3600
        self.snapshot_prune_seconds = float(snapshot_prune_seconds)
        self._next_prune = 0.0  # prune on the first save
        if self.engine.dialect.name == "sqlite":
            self._tune_sqlite()
        try:
            _metadata.create_all(self.engine)
            self._add_created_at_column()
        except (sa.exc.OperationalError, sa.exc.ProgrammingError) as error:
            # Several Rasa workers start at once; one of them creates the table (as Rasa
            # itself does for its events table).
            logger.warning("Could not create the snapshot table (another worker may): %s", error)
        logger.info(
            "Bounded SQL tracker store: at most about %s events per turn; snapshots kept %s h",
            max_events,
            snapshot_max_age_hours,
        )

    def _add_created_at_column(self) -> None:
        """Give a snapshot table made by an earlier version its ``created_at`` column."""
        columns = {column["name"] for column in sa.inspect(self.engine).get_columns(snapshots.name)}
        if "created_at" in columns:
            return
        with self.engine.begin() as connection:
            connection.execute(sa.text(f"ALTER TABLE {snapshots.name} ADD COLUMN created_at FLOAT"))
        for index in snapshots.indexes:
            if index.name == "ix_concierge_tracker_snapshots_created_at":
                index.create(self.engine, checkfirst=True)

    def _tune_sqlite(self) -> None:
        """Keep SQLite connections open, in WAL mode, without an fsync per commit.

        SQLAlchemy 1.4 opens and closes a connection per session on an SQLite file,
        and each close and commit syncs the file: about 15 ms per turn. A pool keeps
        connections; WAL lets readers (other Rasa workers) carry on during a write;
        ``synchronous=NORMAL`` syncs at checkpoints only, so a power cut can lose the
        last turns' events but never corrupts the file (the app database keeps the
        transcript).
        """
        url = self.engine.url
        self.engine.dispose()
        self.engine = sa.create_engine(
            url,
            poolclass=sa.pool.QueuePool,
            pool_size=2,
            connect_args={"check_same_thread": False, "timeout": 30},
        )

        @sa.event.listens_for(self.engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        self.sessionmaker = sa.orm.session.sessionmaker(bind=self.engine)

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        """Return the conversation's current session, bounded (see the module docstring)."""
        with self.session_scope() as session:
            serialised, base_snapshot = self._bounded_events(session, sender_id)
        if not serialised:
            return None
        tracker = DialogueStateTracker.from_events(
            sender_id, deserialise_events(serialised), self.domain.slots
        )
        setattr(tracker, SAVED_EVENTS_ATTRIBUTE, len(tracker.events))
        setattr(tracker, BASE_SNAPSHOT_ATTRIBUTE, base_snapshot)
        return tracker

    def _bounded_events(
        self, session: Any, sender_id: str
    ) -> tuple[list[dict[str, Any]], int | None]:
        """The serialised events Rasa gets, and the snapshot they start from (if any)."""
        event = self.SQLEvent
        # Only the columns needed, never ORM objects: the query runs on every turn.
        rows = (
            self._event_query(session, sender_id, fetch_events_from_all_sessions=False)
            .with_entities(event.id, event.data)
            .order_by(None)
        )
        if self.max_events <= 0:
            return [json.loads(row.data) for row in rows.order_by(event.id)], None
        newest = rows.order_by(event.id.desc()).limit(self.max_events + 1).all()
        if len(newest) <= self.max_events:  # the whole session: one query
            return [json.loads(row.data) for row in reversed(newest)], None
        first = rows.with_entities(sa.func.min(event.id)).scalar()
        snapshot = session.execute(
            sa.select(snapshots.c.event_id, snapshots.c.state)
            .where(
                snapshots.c.sender_id == sender_id,
                snapshots.c.event_id <= newest[-1].id,
                snapshots.c.event_id >= first,
            )
            .order_by(snapshots.c.event_id.desc())
            .limit(1)
        ).first()
        if snapshot is None:  # no snapshot far enough back: everything, as Rasa does
            return [json.loads(row.data) for row in rows.order_by(event.id)], None
        tail = rows.filter(event.id > snapshot.event_id).order_by(event.id)
        events = session_start_events(json.loads(snapshot.state))
        return events + [json.loads(row.data) for row in tail], int(snapshot.event_id)

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Append the events added since the tracker was retrieved, and a turn's snapshot."""
        saved = getattr(tracker, SAVED_EVENTS_ATTRIBUTE, None)
        if saved is None or saved > len(tracker.events):
            await super().save(tracker)  # a tracker Rasa created: counted as Rasa does
            setattr(tracker, SAVED_EVENTS_ATTRIBUTE, len(tracker.events))
            return
        await self.stream_events(tracker)
        new_events = list(itertools.islice(tracker.events, saved, None))
        if not new_events:
            return
        with self.session_scope() as session:
            rows = [self._row(tracker.sender_id, event) for event in new_events]
            session.add_all(rows)
            if _at_turn_end(tracker):
                session.flush()  # assigns the rows' ids
                session.execute(
                    snapshots.insert().values(
                        sender_id=tracker.sender_id,
                        event_id=rows[-1].id,
                        state=json.dumps(state_of(tracker)),
                        created_at=time.time(),
                    )
                )
                base = getattr(tracker, BASE_SNAPSHOT_ATTRIBUTE, None)
                if base is not None:  # never usable again (see the module docstring)
                    session.execute(
                        snapshots.delete().where(
                            snapshots.c.sender_id == tracker.sender_id,
                            snapshots.c.event_id < base,
                        )
                    )
            self._prune_old_snapshots(session)
            session.commit()
        setattr(tracker, SAVED_EVENTS_ATTRIBUTE, len(tracker.events))

    def _prune_old_snapshots(self, session: Any) -> None:
        """Delete snapshots older than the age limit, at most every prune interval."""
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + self.snapshot_prune_seconds
        cutoff = time.time() - self.snapshot_max_age_seconds
        deleted = session.execute(
            snapshots.delete().where(
                sa.or_(snapshots.c.created_at < cutoff, snapshots.c.created_at.is_(None))
            )
        ).rowcount
        if deleted:
            logger.info(
                "Deleted %s tracker snapshots older than %.1f h",
                deleted,
                self.snapshot_max_age_seconds / 3600,
            )

    def _row(self, sender_id: str, event: Event) -> Any:
        """One ``events`` row, exactly as ``SQLTrackerStore.save`` writes it."""
        data = event.as_dict()
        return self.SQLEvent(
            sender_id=sender_id,
            type_name=event.type_name,
            timestamp=data.get("timestamp"),
            intent_name=data.get("parse_data", {}).get("intent", {}).get("name"),
            action_name=data.get("name"),
            data=json.dumps(data),
        )


def _at_turn_end(tracker: DialogueStateTracker) -> bool:
    last = tracker.events[-1] if tracker.events else None
    return isinstance(last, ActionExecuted) and last.action_name == ACTION_LISTEN_NAME
