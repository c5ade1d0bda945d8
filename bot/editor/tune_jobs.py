"""Encoder tunes started from the browser: a background job per tune, one at a time.

A lead starts a tune on the editor's article list. The route inserts a ``kb_tune_jobs``
row (:func:`start_job`; ``active`` is true, and the unique index on it refuses a second
active job, whichever replica is asked) and starts ``python -m bot kb tune --job ID`` as a
child process of that bot service (:func:`spawn`). The child (:func:`run_job`) tunes on the
published articles with the library's ``tune_and_publish``, publishes through the
database's publish lock (:func:`bot.editor.publishing.tuned_publisher`), writes its progress into
the row after every step (at most every :data:`HEARTBEAT_SECONDS`), stops when a lead asks
it to, and ends the row as succeeded, failed or cancelled. Every replica shows the row. A
job whose heartbeat stops for :data:`STALE_SECONDS` (its process or its service died) is
ended as failed, so it never blocks the next one; an interrupted tune leaves the live index
as it was.

Nothing here runs on a customer's request path: the tune runs in its own process, with one
torch thread, for at most its ``max_minutes``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.audit.service import record_event
from bot.config import Settings
from bot.constants import PROJECT_ROOT
from bot.db.base import utcnow
from bot.editor.errors import EditorError
from bot.editor.models import KbTuneJob, TuneJobStatus
from bot.editor.service import REVIEWER_ROLES, Actor, published_set
from knowledge.tuning import StepCallback, TunedPublisher, TuningError

if TYPE_CHECKING:
    from knowledge.head import HeadConfig
    from knowledge.lexical import LexicalConfig
    from knowledge.tuning import TunedEncoder

logger = logging.getLogger(__name__)

STALE_SECONDS = 120.0  # no heartbeat for this long: the tune's process is gone
HEARTBEAT_SECONDS = 2.0  # the tune writes its progress at most this often
ALIVE_SECONDS = 10.0  # and says it is alive this often, also while it loads, exports, builds
MAX_MINUTES = 25.0  # the cap is 30 minutes for the whole tune
MAX_EPOCHS = 5
ACTIVE = (TuneJobStatus.QUEUED.value, TuneJobStatus.RUNNING.value)


class TuneBusyError(EditorError):
    """Another tune is queued or running."""

    status_code = 409

    def __init__(self) -> None:
        super().__init__("A tune is already running: wait for it to finish, or cancel it.")


class TuneJobNotFoundError(EditorError):
    """No such tune job (or a forged id)."""

    status_code = 404

    def __init__(self) -> None:
        super().__init__("There is no such tune.")


class TuneForbiddenError(EditorError):
    """Only leads and admins start or cancel tunes."""

    status_code = 403

    def __init__(self) -> None:
        super().__init__("Only a lead or an admin can tune the encoder.")


class TuneCancelledError(TuningError):
    """Raised inside the tune when a lead asked it to stop (the live index is unchanged)."""

    def __init__(self) -> None:
        super().__init__("Cancelled from the editor; the bot keeps answering from the live build.")


@dataclass(frozen=True)
class TuneOptions:
    """What a lead may choose for a browser tune (the rest are ``kb tune``'s defaults)."""

    max_minutes: float = MAX_MINUTES
    epochs: int = 1

    @classmethod
    def from_form(cls, fields: dict[str, Any]) -> TuneOptions:
        """Parse the form's values; raises :class:`EditorError` with the field's problem."""
        problems: list[tuple[str | None, str]] = []
        minutes, epochs = MAX_MINUTES, 1
        try:
            minutes = float(str(fields.get("max_minutes") or MAX_MINUTES))
            if not 1 <= minutes <= MAX_MINUTES:
                raise ValueError
        except ValueError:
            problems.append(("max_minutes", f"A number of minutes from 1 to {MAX_MINUTES:g}."))
        try:
            epochs = int(str(fields.get("epochs") or 1))
            if not 1 <= epochs <= MAX_EPOCHS:
                raise ValueError
        except ValueError:
            problems.append(("epochs", f"A whole number from 1 to {MAX_EPOCHS}."))
        if problems:
            raise EditorError("The tune settings are not valid.", problems=problems)
        return cls(minutes, epochs)


def _require_lead(actor: Actor) -> None:
    if actor.role not in REVIEWER_ROLES:
        raise TuneForbiddenError()


def end_stale_jobs(session: Session, *, now: dt.datetime | None = None) -> int:
    """End active jobs whose process stopped reporting; returns how many (committed)."""
    now = now or utcnow()
    cutoff = now - dt.timedelta(seconds=STALE_SECONDS)
    ended = 0
    for job in session.scalars(select(KbTuneJob).where(KbTuneJob.active.is_(True))):
        last = job.heartbeat_at or job.created_at
        if last < cutoff:
            _end(
                job,
                TuneJobStatus.FAILED,
                "The tune stopped without finishing (its process ended); the live index "
                "is unchanged.",
                now,
            )
            record_event(
                session,
                actor="system",
                action="kb.tune_failed",
                details={"job": job.id, "reason": "no heartbeat"},
            )
            logger.warning("kb tune job=%s ended: no heartbeat since %s", job.id, last)
            ended += 1
    if ended:
        session.commit()
    return ended


def start_job(
    session: Session, *, actor: Actor, options: TuneOptions | None = None, command: str = ""
) -> KbTuneJob:
    """Queue a tune (committed); the caller runs it (:func:`spawn`, or in its own process).

    Args:
        session: The open session.
        actor: Who starts it (a lead or an admin; the command line acts as an admin).
        options: A browser tune's settings.
        command: A command-line tune's arguments instead (recorded, not parsed).

    Raises:
        TuneForbiddenError: The actor is not a lead or an admin.
        TuneBusyError: Another tune is queued or running.
    """
    _require_lead(actor)
    end_stale_jobs(session)
    recorded: dict[str, Any] = {"command": command[:500]} if command else {}
    if options is not None:
        recorded = {"max_minutes": options.max_minutes, "epochs": options.epochs}
    job = KbTuneJob(requested_by=actor.agent_id, requested_by_name=actor.name, options=recorded)
    session.add(job)
    try:
        session.flush()
    except IntegrityError as exc:  # the unique index on ``active``: one job at a time
        session.rollback()
        raise TuneBusyError() from exc
    record_event(
        session, actor=actor.audit, action="kb.tune_started", details={"job": job.id, **job.options}
    )
    session.commit()
    logger.info("kb tune job=%s queued by %s", job.id, actor.audit)
    return job


def fail_unstarted(session: Session, job_id: int, message: str) -> None:
    """End a queued job whose process could not be started (committed)."""
    job = get_job(session, job_id)
    if job.status == TuneJobStatus.QUEUED.value:
        _end(job, TuneJobStatus.FAILED, message, utcnow())
        record_event(
            session,
            actor="system",
            action="kb.tune_failed",
            details={"job": job_id, "reason": message[:200]},
        )
        session.commit()


def get_job(session: Session, job_id: int) -> KbTuneJob:
    """The job, or :class:`TuneJobNotFoundError`."""
    job = session.get(KbTuneJob, job_id)
    if job is None:
        raise TuneJobNotFoundError()
    return job


def latest_job(session: Session) -> KbTuneJob | None:
    """The newest tune job, if any."""
    return session.scalars(select(KbTuneJob).order_by(KbTuneJob.id.desc()).limit(1)).first()


def request_cancel(session: Session, *, job_id: int, actor: Actor) -> KbTuneJob:
    """Ask a queued or running tune to stop: after its current step, or before it publishes."""
    _require_lead(actor)
    job = get_job(session, job_id)
    if job.status in ACTIVE and not job.cancel_requested:
        job.cancel_requested = True
        record_event(
            session, actor=actor.audit, action="kb.tune_cancel_requested", details={"job": job.id}
        )
        session.commit()
    return job


def job_view(job: KbTuneJob) -> dict[str, Any]:
    """What the page and its JSON show of a job."""
    planned = job.steps_planned
    return {
        "id": job.id,
        "status": job.status,
        "active": bool(job.active),
        "steps_done": job.steps_done,
        "steps_planned": planned,
        "percent": round(100 * job.steps_done / planned) if planned else 0,
        "cancel_requested": job.cancel_requested,
        "requested_by": job.requested_by_name,
        "created_at": job.created_at.isoformat(timespec="seconds"),
        "finished_at": job.finished_at.isoformat(timespec="seconds") if job.finished_at else None,
        "message": job.message,
        "encoder": job.encoder_name,
        "build": job.build_id,
        "options": job.options,
    }


# -- the tune's own process ------------------------------------------------------------------


def _end(job: KbTuneJob, status: TuneJobStatus, message: str, now: dt.datetime) -> None:
    job.status = status.value
    job.active = None
    job.finished_at = now
    job.message = message[:4000]


def claim(factory: sessionmaker[Session], job_id: int) -> dict[str, Any] | None:
    """Mark a queued job running in this process and return its recorded options.

    ``None`` if it is not queued any more, or was cancelled before it started (then it is
    ended as cancelled).
    """
    now = utcnow()
    with factory() as session:
        claimed = session.execute(  # one process claims it, however many were started
            update(KbTuneJob)
            .where(KbTuneJob.id == job_id, KbTuneJob.status == TuneJobStatus.QUEUED.value)
            .values(
                status=TuneJobStatus.RUNNING.value,
                started_at=now,
                heartbeat_at=now,
                pid=os.getpid(),
            )
        ).rowcount  # type: ignore[attr-defined]
        session.commit()
        if not claimed:
            logger.warning(
                "kb tune job=%s is not queued (it ran or was ended); nothing to do", job_id
            )
            return None
        job = get_job(session, job_id)
        cancelled, options = job.cancel_requested, dict(job.options)
    if cancelled:
        finish(factory, job_id, TuneJobStatus.CANCELLED, "Cancelled before it started.")
        return None
    return options


def _progress(factory: sessionmaker[Session], job_id: int, step: int, planned: int) -> bool:
    """Write the progress and heartbeat; returns whether a lead asked the tune to stop."""
    with factory() as session:
        job = get_job(session, job_id)
        job.steps_done, job.steps_planned, job.heartbeat_at = step, planned, utcnow()
        session.commit()
        return job.cancel_requested


def progress_reporter(
    factory: sessionmaker[Session], job_id: int, *, every_seconds: float = HEARTBEAT_SECONDS
) -> StepCallback:
    """The tune's ``on_step`` for a job: progress into its row, and the cancel request.

    Writes at most every ``every_seconds`` and at the last step; raises
    :class:`TuneCancelledError` once a lead has cancelled the job.
    """
    last = [-math.inf]

    def on_step(step: int, planned: int, _loss: float) -> None:
        now = time.monotonic()
        if step < planned and now - last[0] < every_seconds:
            return
        last[0] = now
        if _progress(factory, job_id, step, planned):
            raise TuneCancelledError()

    return on_step


def unless_cancelled(
    publisher: TunedPublisher, factory: sessionmaker[Session], job_id: int
) -> TunedPublisher:
    """``publisher``, refusing with :class:`TuneCancelledError` if the job was cancelled.

    A cancel that arrives after the last training step (during the export or the
    rebuild) is seen here, before anything goes live.
    """

    def publish_unless_cancelled(
        tuned: TunedEncoder, head: HeadConfig | None, lexical: LexicalConfig | None
    ) -> Path:
        with factory() as session:
            if get_job(session, job_id).cancel_requested:
                raise TuneCancelledError()
        return publisher(tuned, head, lexical)

    return publish_unless_cancelled


@contextlib.contextmanager
def kept_alive(factory: sessionmaker[Session], job_id: int) -> Iterator[None]:
    """Beat the job's heartbeat from a thread while the block runs."""
    stop = threading.Event()
    beating = threading.Thread(
        target=_keep_alive, args=(factory, job_id, stop), name="kb-tune-alive", daemon=True
    )
    beating.start()
    try:
        yield
    finally:
        stop.set()


def _keep_alive(factory: sessionmaker[Session], job_id: int, stop: threading.Event) -> None:
    """Beat the job's heartbeat until ``stop`` (model loading, export and rebuild have no steps)."""
    while not stop.wait(ALIVE_SECONDS):
        try:
            with factory() as session:
                session.execute(
                    update(KbTuneJob)
                    .where(KbTuneJob.id == job_id, KbTuneJob.active.is_(True))
                    .values(heartbeat_at=utcnow())
                )
                session.commit()
        except Exception:  # a database hiccup: the next beat tries again
            logger.warning("kb tune job=%s could not write its heartbeat", job_id, exc_info=True)


def finish(
    factory: sessionmaker[Session],
    job_id: int,
    status: TuneJobStatus,
    message: str,
    **fields: Any,
) -> None:
    """End a job with its outcome (committed and audited as ``kb.tune_<status>``).

    ``fields`` sets more of the row, e.g. ``encoder_name`` and ``build_id``.
    """
    with factory() as session:
        job = get_job(session, job_id)
        _end(job, status, message, utcnow())
        for name, value in fields.items():
            setattr(job, name, value)
        record_event(
            session,
            actor=f"tune-job:{job_id}",
            action=f"kb.tune_{status.value}",
            details={"job": job_id, "message": message[:500]},
        )
        session.commit()
    logger.info("kb tune job=%s %s: %s", job_id, status.value, message)


def _actor_of(factory: sessionmaker[Session], job_id: int) -> Actor:
    from bot.agents.models import Agent

    with factory() as session:
        job = get_job(session, job_id)
        agent = session.get(Agent, job.requested_by) if job.requested_by else None
        if agent is not None:
            return Actor.for_agent(agent)
        return Actor(None, job.requested_by_name or "tune job", "lead", f"tune-job:{job_id}")


def _start_from(settings: Settings) -> tuple[Path | None, str | None]:
    """The model the live encoder was tuned from: ``(None, None)`` for the packaged one.

    A knowledge base tuned from all-mpnet-base-v2 must stay on its scale (the answer
    thresholds were chosen for it), so a tune from the browser starts from it too.

    Raises:
        TuningError: If that model is not installed here.
    """
    from knowledge.encoder import EMBEDDING_MODEL_NAME, find_model_folder
    from knowledge.tuning import TuningError, live_tune_record

    try:
        record = live_tune_record(settings.index_dir)
    except (OSError, ValueError) as exc:
        raise TuningError(f"The live encoder's tune record cannot be read ({exc}).") from exc
    base = str((record or {}).get("base_model") or EMBEDDING_MODEL_NAME)
    if base == EMBEDDING_MODEL_NAME:
        return None, None
    folder = find_model_folder(base, settings.models_dir)
    if folder is None:
        raise TuningError(
            f"The live encoder was tuned from {base}, which is not installed here "
            "(python -m bot setup --large-encoder installs all-mpnet-base-v2); nothing changed."
        )
    return folder, base


def run_job(
    settings: Settings, job_id: int, *, heartbeat_seconds: float = HEARTBEAT_SECONDS
) -> int:
    """Run a queued browser tune in this process (``python -m bot kb tune --job ID``).

    Returns:
        The exit code: 0 when it succeeded or was cancelled while running, 1 otherwise.
    """
    import bot.db.models  # noqa: F401  (every table, so audit rows resolve their foreign keys)
    from bot.db.session import create_db_engine, create_session_factory

    engine = create_db_engine(settings.database_url)
    factory = create_session_factory(engine)
    try:
        recorded = claim(factory, job_id)
        if recorded is None:
            return 1
        options = TuneOptions(float(recorded["max_minutes"]), int(recorded["epochs"]))
        with kept_alive(factory, job_id):
            return _run_claimed(
                settings,
                factory,
                job_id,
                options,
                progress_reporter(factory, job_id, every_seconds=heartbeat_seconds),
            )
    finally:
        engine.dispose()


def _run_claimed(
    settings: Settings,
    factory: sessionmaker[Session],
    job_id: int,
    options: TuneOptions,
    on_step: StepCallback,
) -> int:
    """Tune on the published articles, publish, and end the job (see :func:`run_job`)."""
    from bot.editor.publishing import publish_target, tuned_publisher
    from knowledge.encoder import EMBEDDING_MODEL_NAME
    from knowledge.tuning import TuneConfig, tune_and_publish

    with factory() as session:
        articles = [entry.article for entry in published_set(session)]
    try:
        source, base = _start_from(settings)
        done = tune_and_publish(
            articles,
            settings.index_dir,
            TuneConfig(max_minutes=options.max_minutes, epochs=options.epochs),
            source_dir=source,
            base_name=base or EMBEDDING_MODEL_NAME,
            on_step=on_step,
            publisher=unless_cancelled(
                tuned_publisher(
                    factory,
                    publish_target(settings),
                    actor=_actor_of(factory, job_id),
                    require_review=settings.kb_require_review,
                ),
                factory,
                job_id,
            ),
        )
    except TuneCancelledError as exc:
        finish(factory, job_id, TuneJobStatus.CANCELLED, exc.message)
        return 0
    except TuningError as exc:
        finish(factory, job_id, TuneJobStatus.FAILED, exc.message)
        return 1
    except Exception as exc:
        logger.exception("kb tune job=%s failed", job_id)
        finish(
            factory,
            job_id,
            TuneJobStatus.FAILED,
            f"The tune failed ({type(exc).__name__}); the bot keeps answering from the "
            "live build. The operator's log has the details.",
        )
        return 1
    tune = done.tune
    cut = ", stopped by its time cap" if tune.stopped_by_budget else ""
    finish(
        factory,
        job_id,
        TuneJobStatus.SUCCEEDED,
        f"Tuned on {tune.pairs} pairs ({tune.steps} of {tune.planned_steps} steps{cut}) in "
        f"{done.seconds / 60:.1f} min; build {done.build_dir.name} is live.",
        encoder_name=done.name,
        build_id=done.build_dir.name,
        steps_done=tune.steps,
        steps_planned=tune.planned_steps,
    )
    return 0


def spawn(settings: Settings, job_id: int) -> int:
    """Start the tune's process (a child of this service, stopped with it); returns its pid.

    Its output goes to ``<log_dir>/kb-tune-<id>.log``. A thread waits for it, so it never
    lingers as a zombie.
    """
    from bot.ops.stack import settings_environment

    settings.log_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.log_dir / f"kb-tune-{job_id}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "kb", "tune", "--job", str(job_id)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,  # where the code is (``python -m bot``)
            env={**os.environ, **settings_environment(settings)},  # the same settings
        )
    threading.Thread(target=process.wait, name=f"kb-tune-{job_id}", daemon=True).start()
    logger.info("kb tune job=%s started pid=%s log=%s", job_id, process.pid, log_path)
    return process.pid
