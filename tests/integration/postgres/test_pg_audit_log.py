"""The audit log is append-only on PostgreSQL: the trigger refuses UPDATE, DELETE, TRUNCATE."""

from __future__ import annotations

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.audit.models import AuditEvent
from bot.audit.service import record_event

pytestmark = [pytest.mark.integration, pytest.mark.network, pytest.mark.postgres]

REFUSED = [
    "UPDATE audit_events SET actor = 'someone else'",
    "UPDATE audit_events SET details = '{}' WHERE action = 'test.first'",
    "DELETE FROM audit_events WHERE action = 'test.first'",
    "DELETE FROM audit_events",
    "TRUNCATE audit_events",
]


@pytest.fixture
def logged(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    with session_factory() as session:
        record_event(session, actor="test", action="test.first", details={"n": 1})
        record_event(session, actor="test", action="test.second", details={"n": 2})
        session.commit()
    return session_factory


@pytest.mark.parametrize("statement", REFUSED)
def test_changing_or_removing_audit_rows_is_refused(
    logged: sessionmaker[Session], statement: str
) -> None:
    with logged() as session:
        with pytest.raises(IntegrityError, match="append-only"):
            session.execute(text(statement))
        session.rollback()
        rows = session.execute(text("SELECT action, actor FROM audit_events ORDER BY id")).all()
    assert [tuple(row) for row in rows] == [("test.first", "test"), ("test.second", "test")]


def test_the_orm_cannot_change_an_event_either(logged: sessionmaker[Session]) -> None:
    with logged() as session:
        event = session.query(AuditEvent).filter_by(action="test.first").one()
        event.details = {"n": 99}
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
        with pytest.raises(IntegrityError):
            session.execute(update(AuditEvent).values(actor="x"))
        session.rollback()
        session.delete(session.get(AuditEvent, event.id))
        with pytest.raises(IntegrityError):
            session.commit()


def test_appending_still_works(logged: sessionmaker[Session]) -> None:
    with logged() as session:
        record_event(session, actor="test", action="test.third", details={})
        session.commit()
        assert session.scalar(text("SELECT count(*) FROM audit_events")) == 3
