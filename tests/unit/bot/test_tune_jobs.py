"""Tune jobs on a real database (no tune runs here; see tests/unit/ops/test_cli_kb_editor.py):
one active job whatever the race, one process claims it, dead jobs end, cancels before start.
Run unchanged against PostgreSQL by tests/integration/postgres/test_pg_unit_tune_jobs.py."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.audit.models import AuditEvent
from bot.editor import tune_jobs
from bot.editor.models import KbTuneJob, TuneJobStatus
from bot.editor.service import Actor
from tests.helpers.desk import make_user

pytestmark = pytest.mark.unit
OPTIONS = tune_jobs.TuneOptions(max_minutes=5, epochs=1)


@pytest.fixture
def lead(session_factory: sessionmaker[Session]) -> Actor:
    user = make_user(session_factory, email="lena@example.com", role="lead", teams=())
    return Actor(user.id, "Lena", "lead", f"agent:{user.id}")


def test_of_many_simultaneous_starts_one_job_is_queued(
    session_factory: sessionmaker[Session], lead: Actor
) -> None:
    start = threading.Barrier(6)
    outcomes: list[str] = []

    def click() -> None:
        start.wait()
        with session_factory() as session:
            try:
                tune_jobs.start_job(session, actor=lead, options=OPTIONS)
                outcomes.append("queued")
            except tune_jobs.TuneBusyError:
                outcomes.append("busy")

    threads = [threading.Thread(target=click) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["busy"] * 5 + ["queued"]
    with session_factory() as session:
        assert len(list(session.scalars(select(KbTuneJob)))) == 1
        started = session.scalars(select(AuditEvent).where(AuditEvent.action == "kb.tune_started"))
        assert len(list(started)) == 1


def test_one_process_claims_a_job_and_a_finished_one_frees_the_slot(
    session_factory: sessionmaker[Session], lead: Actor
) -> None:
    with session_factory() as session:
        job_id = tune_jobs.start_job(session, actor=lead, options=OPTIONS).id
    assert tune_jobs.claim(session_factory, job_id) == {"max_minutes": 5.0, "epochs": 1}
    assert tune_jobs.claim(session_factory, job_id) is None  # a second process: nothing
    with session_factory() as session, pytest.raises(tune_jobs.TuneBusyError):
        tune_jobs.start_job(session, actor=lead, options=OPTIONS)
    tune_jobs.finish(session_factory, job_id, TuneJobStatus.SUCCEEDED, "done", build_id="b1")
    with session_factory() as session:
        job = tune_jobs.get_job(session, job_id)
        assert (job.status, job.active, job.build_id) == ("succeeded", None, "b1")
        assert tune_jobs.start_job(session, actor=lead, options=OPTIONS).id != job_id


def test_a_job_cancelled_before_its_process_claims_it_never_runs(
    session_factory: sessionmaker[Session], lead: Actor
) -> None:
    with session_factory() as session:
        job_id = tune_jobs.start_job(session, actor=lead, options=OPTIONS).id
        tune_jobs.request_cancel(session, job_id=job_id, actor=lead)
    assert tune_jobs.claim(session_factory, job_id) is None
    with session_factory() as session:
        job = tune_jobs.get_job(session, job_id)
        assert job.status == "cancelled" and job.message == "Cancelled before it started."
        actions = list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
        assert actions[-2:] == ["kb.tune_cancel_requested", "kb.tune_cancelled"]


def test_dead_jobs_end_queued_or_running_and_live_ones_stay(
    session_factory: sessionmaker[Session], lead: Actor
) -> None:
    with session_factory() as session:
        job_id = tune_jobs.start_job(session, actor=lead, options=OPTIONS).id
    tune_jobs.claim(session_factory, job_id)
    now = tune_jobs.utcnow()
    with session_factory() as session:
        assert tune_jobs.end_stale_jobs(session, now=now) == 0  # it beat just now
        later = now + dt.timedelta(seconds=tune_jobs.STALE_SECONDS + 1)
        assert tune_jobs.end_stale_jobs(session, now=later) == 1
        job = tune_jobs.get_job(session, job_id)
        assert job.status == "failed" and job.active is None
        assert "stopped without finishing" in job.message
