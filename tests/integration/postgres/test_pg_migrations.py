"""Migrations on a real PostgreSQL: empty to head matches the models, down to base and back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

import bot.db.models  # noqa: F401  (every table registered on the metadata)
from bot.db.base import Base
from bot.db.session import (
    create_db_engine,
    create_session_factory,
    downgrade_database,
    upgrade_database,
)
from bot.handoff.models import Ticket

pytestmark = [pytest.mark.integration, pytest.mark.network, pytest.mark.postgres]

NOW = dt.datetime(2026, 11, 24, 9, 30, tzinfo=dt.UTC)


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def _with_engine(url: str, check: Callable[[Engine], object]) -> object:
    engine = create_db_engine(url)
    try:
        return check(engine)
    finally:
        engine.dispose()


def _a_conversation_with_an_audit_event(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO conversations (id, channel, mode, created_at, updated_at) "
                "VALUES ('c1', 'webchat', 'bot', :now, :now)"
            ),
            {"now": NOW},
        )
        connection.execute(
            text(
                "INSERT INTO audit_events (at, actor, action, conversation_id, details) "
                "VALUES (:now, 'test', 'test.event', 'c1', '{}')"
            ),
            {"now": NOW},
        )


def test_upgrade_from_empty_gives_exactly_the_models_schema(
    new_database: Callable[..., str],
) -> None:
    url = new_database()
    upgrade_database(url)
    upgrade_database(url)  # a second run is a no-op

    def check(engine: Engine) -> None:
        assert _tables(engine) == set(Base.metadata.tables) | {"alembic_version"}
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
            assert differences == []
            index = connection.scalar(
                text(
                    "SELECT indexdef FROM pg_indexes "
                    "WHERE indexname = 'uq_tickets_open_conversation'"
                )
            )
            triggers = connection.scalars(
                text(
                    "SELECT tgname FROM pg_trigger "
                    "WHERE tgrelid = 'audit_events'::regclass AND NOT tgisinternal"
                )
            ).all()
        assert index is not None
        assert "UNIQUE" in index
        assert "WHERE" in index
        assert "'queued'" in index and "'assigned'" in index
        assert sorted(triggers) == ["audit_events_no_change", "audit_events_no_truncate"]

    _with_engine(url, check)


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_downgrade_to_base_and_upgrade_again(
    backend: str, new_database: Callable[..., str], tmp_path: Path
) -> None:
    url = new_database() if backend == "postgresql" else f"sqlite:///{tmp_path / 'app.db'}"
    upgrade_database(url)

    _with_engine(url, _a_conversation_with_an_audit_event)
    downgrade_database(url, "base")
    assert _with_engine(url, _tables) == {"alembic_version"}
    upgrade_database(url)
    assert _with_engine(url, _tables) == set(Base.metadata.tables) | {"alembic_version"}


def test_handoffs_of_0001_become_tickets_and_new_tickets_still_get_ids(
    new_database: Callable[..., str],
) -> None:
    """0002 copies handoffs into tickets with their ids; the id sequence must follow."""
    url = new_database()
    upgrade_database(url, "0001")

    def fill(engine: Engine) -> None:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO conversations (id, channel, mode, created_at, updated_at) "
                    "VALUES ('c1', 'webchat', 'handoff_pending', :now, :now), "
                    "('c2', 'webchat', 'bot', :now, :now)"
                ),
                {"now": NOW},
            )
            connection.execute(
                text(
                    "INSERT INTO handoffs (id, conversation_id, status, reason, context, "
                    "created_at, updated_at) VALUES "
                    "(1, 'c1', 'closed', 'asked', '{}', :now, :now), "
                    "(2, 'c1', 'pending', 'asked again', '{}', :now, :now)"
                ),
                {"now": NOW},
            )

    _with_engine(url, fill)
    upgrade_database(url)

    def use(engine: Engine) -> None:
        with create_session_factory(engine)() as session:
            statuses = dict(session.execute(text("SELECT id, status FROM tickets")).all())
            assert statuses == {1: "resolved", 2: "queued"}
            ticket = _ticket(conversation_id="c2")
            session.add(ticket)
            session.commit()  # before the fix: duplicate key on pk_tickets (id 1)
            assert ticket.id == 3

    _with_engine(url, use)


def test_downgrade_to_0001_turns_tickets_back_into_handoffs(
    new_database: Callable[..., str],
) -> None:
    url = new_database()
    upgrade_database(url)

    def fill(engine: Engine) -> None:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO conversations (id, channel, mode, created_at, updated_at) "
                    "VALUES ('c1', 'webchat', 'agent', :now, :now)"
                ),
                {"now": NOW},
            )
            for status in ("resolved", "withdrawn", "assigned"):
                connection.execute(
                    text(
                        "INSERT INTO tickets (conversation_id, status, reason_code, reason, "
                        "priority, identity_verified, channel, language, summary, context, "
                        "created_at, updated_at) VALUES ('c1', :status, 'customer_request', "
                        "'asked', 1, false, 'webchat', 'en', '', '{}', :now, :now)"
                    ),
                    {"status": status, "now": NOW},
                )

    _with_engine(url, fill)
    downgrade_database(url, "0001")

    def check(engine: Engine) -> None:
        assert "tickets" not in _tables(engine)
        with engine.begin() as connection:
            rows = connection.execute(text("SELECT id, status FROM handoffs ORDER BY id")).all()
            assert [tuple(row) for row in rows] == [(1, "closed"), (2, "closed"), (3, "assigned")]
            new_id = connection.scalar(
                text(
                    "INSERT INTO handoffs (conversation_id, status, reason, context, "
                    "created_at, updated_at) VALUES ('c1', 'pending', 'again', '{}', :now, :now) "
                    "RETURNING id"
                ),
                {"now": NOW},
            )
            assert new_id == 4

    _with_engine(url, check)


def test_0004_repairs_a_database_migrated_by_the_first_0002(
    new_database: Callable[..., str],
) -> None:
    """The first 0002 left a generic audit error, no TRUNCATE guard and a stale sequence."""
    url = new_database()
    upgrade_database(url)
    downgrade_database(url, "0003")

    def break_as_first_0002(engine: Engine) -> None:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger "
                    "AS $$ BEGIN RAISE EXCEPTION 'audit_events is append-only'; END; $$ "
                    "LANGUAGE plpgsql"
                )
            )
            connection.execute(text("DROP TRIGGER audit_events_no_truncate ON audit_events"))
        _a_conversation_with_an_audit_event(engine)

        with create_session_factory(engine)() as session:  # copied with its id: no nextval
            session.add(_ticket(id=7, status="resolved"))
            session.commit()

    _with_engine(url, break_as_first_0002)
    upgrade_database(url)
    upgrade_database(url)  # idempotent

    def check(engine: Engine) -> None:
        from sqlalchemy.exc import IntegrityError

        for statement in ("UPDATE audit_events SET actor = 'x'", "TRUNCATE audit_events"):
            with pytest.raises(IntegrityError), engine.begin() as connection:
                connection.execute(text(statement))
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT count(*) FROM audit_events")) == 1
        with create_session_factory(engine)() as session:
            ticket = _ticket()
            session.add(ticket)
            session.commit()  # the first 0002's sequence would have given id 1, then 2...
            assert ticket.id == 8

    _with_engine(url, check)


def _ticket(**fields: object) -> Ticket:
    values: dict[str, object] = {
        "conversation_id": "c1",
        "status": "queued",
        "reason_code": "customer_request",
        "reason": "new",
    }
    return Ticket(**(values | fields))
