from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.orm import Session

from bot.conversations.models import Conversation
from bot.db import models
from bot.db.session import create_db_engine, create_session_factory, upgrade_database


def test_upgrade_creates_parent_folder_and_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'deeper' / 'app.db'}"
    upgrade_database(url)
    upgrade_database(url)  # second run: nothing to do, no error

    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            assert MigrationContext.configure(connection).get_current_revision() == "0005"
            tables = set(inspect(connection).get_table_names())
    finally:
        engine.dispose()
    assert {
        "conversations",
        "messages",
        "teams",
        "accounts",
        "contacts",
        "orders",
        "tickets",
        "agents",
        "agent_sessions",
        "attachments",
        "audit_events",
    } <= tables
    assert "handoffs" not in tables  # migrated into tickets by 0002


def test_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), models.Base.metadata)
    assert differences == []


def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(engine: Engine) -> None:
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 5000


def test_in_memory_database_works(tmp_path: Path) -> None:
    engine = create_db_engine("sqlite://")
    try:
        models.Base.metadata.create_all(engine)
        with create_session_factory(engine)() as session:
            session.add(Conversation(channel="webchat"))
            session.commit()
            assert session.query(Conversation).count() == 1
    finally:
        engine.dispose()


def test_timestamps_come_back_as_aware_utc(session: Session) -> None:
    conversation = Conversation(channel="webchat")
    session.add(conversation)
    session.commit()
    session.expunge_all()

    loaded = session.get(Conversation, conversation.id)
    assert loaded is not None
    assert loaded.created_at.tzinfo is not None
    assert loaded.created_at.utcoffset() == dt.timedelta(0)
    assert abs(loaded.created_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)


def test_session_objects_survive_commit(session: Session) -> None:
    conversation = Conversation(channel="webchat")
    session.add(conversation)
    session.commit()
    # expire_on_commit=False: no reload (and so no query) needed after commit.
    assert "mode" in conversation.__dict__


def test_two_engines_can_write_the_same_file(database_url: str) -> None:
    """Bot service and action server write the same file: busy timeout absorbs contention."""
    errors: list[Exception] = []

    def write(count: int) -> None:
        engine = create_db_engine(database_url)
        try:
            factory = create_session_factory(engine)
            for _ in range(count):
                with factory() as session:
                    session.add(Conversation(channel="webchat"))
                    session.commit()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=write, args=(25,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    engine = create_db_engine(database_url)
    try:
        with create_session_factory(engine)() as session:
            assert session.query(Conversation).count() == 50
    finally:
        engine.dispose()


def test_0002_turns_existing_handoffs_into_tickets(tmp_path: Path) -> None:
    from alembic import command

    from bot.db.session import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_db_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.upgrade(config, "0001")
            connection.execute(
                text(
                    "INSERT INTO conversations (id, channel, mode, created_at, updated_at) "
                    "VALUES ('c1', 'webchat', 'handoff_pending', '2026-11-01', '2026-11-01')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO handoffs (conversation_id, status, reason, context, "
                    "created_at, updated_at) VALUES ('c1', 'pending', 'asked', '{\"a\": 1}', "
                    "'2026-11-01', '2026-11-01')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO messages (conversation_id, role, text, status, created_at) "
                    "VALUES ('c1', 'customer', 'hello', 'delivered', '2026-11-01')"
                )
            )
        upgrade_database(url)
        with engine.connect() as connection:
            row = connection.execute(
                text("SELECT status, reason, context FROM tickets WHERE conversation_id = 'c1'")
            ).one()
            kept = connection.execute(text("SELECT text, private FROM messages")).all()
    finally:
        engine.dispose()
    assert (row.status, row.reason) == ("queued", "asked")
    assert row.context == '{"a": 1}'
    assert [tuple(message) for message in kept] == [("hello", 0)]
