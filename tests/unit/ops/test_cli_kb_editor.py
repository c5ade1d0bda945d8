"""``python -m bot kb publish|history|rollback|import|export`` on a real SQLite file, with the
fake encoder building into a real index root; ``kb build`` publishes from the database once
the database holds articles; ``kb tune`` (and ``kb tune --job ID``, a lead's tune from the
browser) with a tiny locally built model, publishing through the database."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.cli import main
from bot.config import get_settings
from bot.db.session import create_db_engine, create_session_factory, upgrade_database
from bot.editor import service
from bot.editor.service import Actor
from knowledge import editor
from knowledge import encoder as encoder_module
from knowledge.articles import load_articles
from knowledge.store import current_build, load_current
from tests.helpers.fake_encoder import FakeEncoder
from tests.unit.knowledge.conftest import write_samples

FAKE = FakeEncoder()


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    write_samples(tmp_path / "articles")
    monkeypatch.setenv("CONCIERGE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("COLUMNS", "200")  # rich tables unwrapped
    monkeypatch.setenv("CONCIERGE_ARTICLES_DIR", str(tmp_path / "articles"))
    monkeypatch.setenv("CONCIERGE_INDEX_DIR", str(tmp_path / "kb-index"))
    monkeypatch.setattr(editor, "default_encoder", lambda: FAKE)
    monkeypatch.setattr(encoder_module, "default_encoder", lambda: FAKE)
    get_settings.cache_clear()
    upgrade_database(get_settings().database_url)
    yield tmp_path
    get_settings.cache_clear()


def test_import_publish_history_rollback_export(
    deployment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kb", "import"]) == 0
    assert "Imported 4 articles" in capsys.readouterr().out
    assert main(["kb", "import"]) == 0
    assert "nothing imported" in capsys.readouterr().out

    assert main(["kb", "publish"]) == 0
    out = capsys.readouterr().out
    assert "restore" in out and "is live: 4 articles" in out
    assert len(load_current(deployment / "kb-index", FAKE)) == 4

    assert main(["kb", "rollback", "returns-start-a-return", "1"]) == 0
    assert "Saved revision 2" in capsys.readouterr().out
    assert main(["kb", "history", "returns-start-a-return", "--diff", "1", "2"]) == 0
    history = capsys.readouterr().out
    assert "draft" in history and "published" in history and "rollback to revision 1" in history
    assert "No differences." in history

    assert main(["kb", "history", "no-such-article"]) == 1
    assert "no such article" in capsys.readouterr().err
    assert main(["kb", "rollback", "returns-start-a-return", "9"]) == 1

    assert main(["kb", "export", str(deployment / "export")]) == 0
    exported = load_articles(deployment / "export")
    assert [a.canonical_content() for a in exported] == [
        a.canonical_content() for a in load_articles(deployment / "articles")
    ]


def test_kb_build_publishes_from_the_database_once_it_holds_articles(
    deployment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kb", "import"]) == 0
    (deployment / "articles" / "returns-start-a-return.md").unlink()  # the folder drifts
    capsys.readouterr()
    assert main(["kb", "build"]) == 0
    assert "publishing them" in capsys.readouterr().out
    assert "returns-start-a-return" in load_current(deployment / "kb-index", FAKE)
    assert main(["kb", "build", "--articles-dir", str(deployment / "articles")]) == 0
    assert "returns-start-a-return" not in load_current(deployment / "kb-index", FAKE)


def test_build_options_reach_the_database_publish(
    deployment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from knowledge.lexical import LexicalConfig
    from knowledge.store import current_manifest

    root = deployment / "kb-index"
    assert main(["kb", "import"]) == 0
    assert main(["kb", "build", "--bm25", "0.1"]) == 0  # forwarded to kb publish
    assert current_manifest(root).lexical == LexicalConfig(weight=0.1)  # type: ignore[union-attr]
    assert main(["kb", "publish", "--force"]) == 0  # kept
    assert current_manifest(root).lexical == LexicalConfig(weight=0.1)  # type: ignore[union-attr]
    assert main(["kb", "publish", "--no-bm25"]) == 0
    assert current_manifest(root).lexical is None  # type: ignore[union-attr]
    capsys.readouterr()
    assert main(["kb", "build", "--bm25", "7"]) == 2  # refused before anything is built
    assert "between 0 and 1" in capsys.readouterr().err
    assert current_manifest(root).lexical is None  # type: ignore[union-attr]
    assert current_manifest(root).head is not None  # type: ignore[union-attr]
    assert main(["kb", "build", "--no-head"]) == 0  # forwarded too
    assert current_manifest(root).head is None  # type: ignore[union-attr]
    assert main(["kb", "publish", "--force"]) == 0  # kept, as by the editor's Publish
    assert current_manifest(root).head is None  # type: ignore[union-attr]
    assert main(["kb", "build", "--head"]) == 0
    assert current_manifest(root).head is not None  # type: ignore[union-attr]
    assert main(["kb", "build", "--no-reuse"]) == 2  # a folder build's option: refused
    assert "only apply to a folder build" in " ".join(capsys.readouterr().err.split())


def test_kb_tune_tunes_on_the_published_database_articles(
    deployment: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pytest.importorskip("sentence_transformers")
    from tests.unit.knowledge.test_tuning import _tiny_model

    tiny = _tiny_model(tmp_path / "tiny")
    assert main(["kb", "import"]) == 0
    assert main(["kb", "publish"]) == 0
    (deployment / "articles" / "returns-start-a-return.md").unlink()  # the seed folder drifts
    capsys.readouterr()

    assert main(["kb", "tune", "--start-from", str(tiny), "--max-minutes", "5"]) == 0

    assert "tuning on the 4 published ones" in " ".join(capsys.readouterr().out.split())
    live = load_current(deployment / "kb-index")  # the tuned build's own query encoder
    assert live.manifest.model.startswith("source+tuned-")
    assert "returns-start-a-return" in live

    # Back to the packaged model, from the database too (kb build forwards --base-model).
    assert main(["kb", "build", "--base-model"]) == 0
    assert load_current(deployment / "kb-index", FAKE).manifest.model == FAKE.name


def test_kb_tune_keeps_what_editors_publish_while_it_runs(
    deployment: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tune takes minutes: its build must not put back what editors changed meanwhile."""
    pytest.importorskip("sentence_transformers")
    from sqlalchemy import select

    from bot.audit.models import AuditEvent
    from bot.editor.models import KbPublication
    from bot.editor.publishing import publish, publish_target
    from knowledge import tuning
    from tests.unit.knowledge.test_tuning import _tiny_model

    tiny = _tiny_model(tmp_path / "tiny")
    assert main(["kb", "import"]) == 0
    assert main(["kb", "publish"]) == 0
    settings = get_settings()
    factory = create_session_factory(create_db_engine(settings.database_url))
    editor_actor = Actor.command_line("an editor")
    real_tune = tuning.tune_encoder

    def tune_while_an_editor_works(*args: object, **kwargs: object) -> object:
        result = real_tune(*args, **kwargs)  # type: ignore[arg-type]
        with factory() as session:  # an editor retires one article and publishes it
            service.set_retired(
                session, article_id="delivery-track-order", actor=editor_actor, retired=True
            )
        publish(factory, publish_target(settings), actor=editor_actor, require_review=False)
        with factory() as session:  # and saves a draft of another without publishing it
            content = dict(service.latest_revision(session, "account-reset-password").content)
            service.save_revision(
                session,
                article_id="account-reset-password",
                content={**content, "title": "Draft title not yet published"},
                actor=editor_actor,
            )
        return result

    monkeypatch.setattr(tuning, "tune_encoder", tune_while_an_editor_works)
    capsys.readouterr()

    assert main(["kb", "tune", "--start-from", str(tiny), "--max-minutes", "5"]) == 0

    live = load_current(deployment / "kb-index")
    assert live.manifest.model.startswith("source+tuned-")
    assert "delivery-track-order" not in live  # the editor's retirement stays
    assert "returns-start-a-return" in live
    reset = live.article("account-reset-password")
    assert reset is not None and reset.title == "How do I reset my password?"  # not the draft
    with factory() as session:
        last = session.scalars(select(KbPublication).order_by(KbPublication.id.desc())).first()
        build = current_build(deployment / "kb-index")
        assert last is not None and last.status == "succeeded"
        assert build is not None and last.build_id == build.name
        event = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "kb.published")
            .order_by(AuditEvent.id.desc())
        ).first()
        assert event is not None and event.details["note"] == f"kb tune: {live.manifest.model}"
        assert event.details["changes"] == []
        assert service.pending_changes(session, require_review=False) == [
            ("account-reset-password", "update")
        ]


def test_a_tuned_model_waits_for_an_editors_publish_then_gives_up_clearly(
    deployment: Path,
) -> None:
    from types import SimpleNamespace

    from bot.editor import cli as editor_cli
    from bot.editor import publishing
    from bot.editor.publishing import acquire_lock, release_lock
    from knowledge.tuning import TuningError

    assert main(["kb", "import"]) == 0
    assert main(["kb", "publish"]) == 0
    before = current_build(deployment / "kb-index")
    factory = create_session_factory(create_db_engine(get_settings().database_url))
    tuned = SimpleNamespace(
        name="fake+tuned-0123", encoder=lambda: FAKE, query_encoder_dir=None, encoder_dir=None
    )
    holder = acquire_lock(factory, actor=Actor.command_line("an editor"))
    waits: list[float] = []

    def editor_finishes(seconds: float) -> None:
        waits.append(seconds)
        release_lock(factory, holder)

    publish_tuned = editor_cli.tuned_publisher(get_settings(), factory, sleep=editor_finishes)
    build = publish_tuned(tuned, None, None)  # type: ignore[arg-type]
    assert waits == [publishing.TUNE_PUBLISH_WAIT_SECONDS]
    assert build == current_build(deployment / "kb-index") != before  # rebuilt, put live

    acquire_lock(factory, actor=Actor.command_line("an editor"))  # never released
    waits.clear()
    stuck = editor_cli.tuned_publisher(get_settings(), factory, sleep=waits.append)
    with pytest.raises(TuningError, match=r"tuned .* but nothing was published"):
        stuck(tuned, None, None)  # type: ignore[arg-type]
    assert len(waits) == publishing.TUNE_PUBLISH_ATTEMPTS - 1


def test_help_lists_the_database_verbs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kb", "--help"]) == 0
    out = capsys.readouterr().out
    assert "rollback ARTICLE_ID REV" in out and "export DIR" in out
    assert main(["kb", "rollback", "--help"]) == 0
    assert "History is never rewritten" in capsys.readouterr().out


def test_doctor_compares_the_live_build_with_the_database(deployment: Path) -> None:
    from bot.ops.doctor import check_index

    assert main(["kb", "import"]) == 0
    assert main(["kb", "publish"]) == 0
    assert check_index(get_settings()).ok
    (deployment / "articles" / "returns-start-a-return.md").unlink()  # the seed folder drifts
    assert check_index(get_settings()).ok  # the database, not the folder, is the truth
    engine = create_db_engine(get_settings().database_url)
    try:
        with create_session_factory(engine)() as session:
            latest = service.latest_revision(session, "account-reset-password")
            service.save_revision(
                session,
                article_id="account-reset-password",
                content={**latest.content, "body": "Use the new reset page."},
                actor=Actor.command_line(),
            )
    finally:
        engine.dispose()
    stale = check_index(get_settings())
    assert not stale.ok and stale.fix == "python -m bot kb publish"
    assert main(["kb", "publish"]) == 0
    assert check_index(get_settings()).ok


def _lead(factory: object) -> Actor:
    from tests.helpers.desk import make_user

    user = make_user(factory, email="lead@example.com", role="lead", teams=())  # type: ignore[arg-type]
    return Actor(user.id, "Lena Lead", "lead", f"agent:{user.id}")


@dataclass(frozen=True)
class Tunable:
    """A deployment whose published articles can be tuned: a tiny model stands in for
    the packaged MiniLM (no download), and a lead to start and cancel tunes."""

    tiny: Path
    factory: sessionmaker[Session]
    lead: Actor


@pytest.fixture
def tunable(deployment: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Tunable:
    pytest.importorskip("sentence_transformers")
    from knowledge import tuning
    from tests.unit.knowledge.test_tuning import _tiny_model

    tiny = _tiny_model(tmp_path / "tiny")
    monkeypatch.setattr(tuning, "packaged_model_path", lambda: tiny)
    assert main(["kb", "import"]) == 0
    assert main(["kb", "publish"]) == 0
    factory = create_session_factory(create_db_engine(get_settings().database_url))
    return Tunable(tiny, factory, _lead(factory))


def test_a_browser_tune_job_runs_reports_progress_and_publishes(
    deployment: Path, tunable: Tunable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python -m bot kb tune --job ID``: what the editor's Tune button starts."""
    from sqlalchemy import select

    from bot.audit.models import AuditEvent
    from bot.editor import tune_jobs
    from bot.editor.models import KbPublication
    from knowledge.encoder import EMBEDDING_MODEL_NAME

    factory, lead = tunable.factory, tunable.lead
    seen: list[tuple[int, int]] = []
    real_progress = tune_jobs._progress

    def progress(factory: object, job_id: int, step: int, planned: int) -> bool:
        seen.append((step, planned))
        return real_progress(factory, job_id, step, planned)  # type: ignore[arg-type]

    monkeypatch.setattr(tune_jobs, "_progress", progress)
    with factory() as session:
        options = tune_jobs.TuneOptions.from_form({"max_minutes": "5", "epochs": "2"})
        job_id = tune_jobs.start_job(session, actor=lead, options=options).id
        with pytest.raises(tune_jobs.TuneBusyError):  # one at a time
            tune_jobs.start_job(session, actor=lead, options=options)

    assert main(["kb", "tune", "--job", str(job_id)]) == 0

    assert (
        seen
        and seen[-1][0] == seen[-1][1] > 1
        and [s for s, _ in seen] == sorted(s for s, _ in seen)
    )
    live = load_current(deployment / "kb-index")
    with factory() as session:
        job = tune_jobs.get_job(session, job_id)
        assert job.status == "succeeded" and job.active is None
        assert job.encoder_name == live.manifest.model  # the packaged model, tuned
        assert job.encoder_name.startswith(f"{EMBEDDING_MODEL_NAME}+tuned-")
        assert job.steps_done == job.steps_planned == seen[-1][1]
        assert "build" in job.message and job.build_id in job.message
        publication = session.scalars(
            select(KbPublication).order_by(KbPublication.id.desc())
        ).first()
        assert publication is not None and publication.actor == lead.audit  # the lead's tune
        actions = list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
        assert actions.count("kb.tune_started") == 1 and actions[-1] == "kb.tune_succeeded"
        # Finished: the next one may start; a second run of the same job does nothing.
        assert tune_jobs.start_job(session, actor=lead, options=options).id > job_id
    assert main(["kb", "tune", "--job", str(job_id)]) == 1


def test_a_browser_tune_stops_when_cancelled_and_a_dead_one_is_ended(
    deployment: Path, tunable: Tunable, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime as dt

    from bot.editor import tune_jobs
    from bot.editor.models import KbTuneJob
    from knowledge import tuning

    before = current_build(deployment / "kb-index")
    factory, lead = tunable.factory, tunable.lead
    options = tune_jobs.TuneOptions(max_minutes=5, epochs=3)
    with factory() as session:
        job_id = tune_jobs.start_job(session, actor=lead, options=options).id
    real_tune = tuning.tune_encoder

    def cancelled_meanwhile(*args: object, **kwargs: object) -> object:
        with factory() as session:  # a lead clicks Cancel while the model loads
            tune_jobs.request_cancel(session, job_id=job_id, actor=lead)
        return real_tune(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tuning, "tune_encoder", cancelled_meanwhile)

    assert main(["kb", "tune", "--job", str(job_id)]) == 0

    assert current_build(deployment / "kb-index") == before  # the live index is unchanged
    assert list((deployment / "kb-index" / "encoders").iterdir()) == []
    with factory() as session:
        job = tune_jobs.get_job(session, job_id)
        assert job.status == "cancelled" and job.steps_done < job.steps_planned
        # A job whose process died (no heartbeat) is ended, and no longer blocks the next.
        dead = tune_jobs.start_job(session, actor=lead, options=options)
        dead.heartbeat_at = tune_jobs.utcnow() - dt.timedelta(seconds=tune_jobs.STALE_SECONDS + 1)
        session.commit()
        assert tune_jobs.start_job(session, actor=lead, options=options).status == "queued"
        ended = session.get(KbTuneJob, dead.id)
        assert ended is not None and ended.status == "failed" and ended.active is None
        assert "stopped without finishing" in ended.message

        with pytest.raises(tune_jobs.TuneForbiddenError):
            tune_jobs.start_job(
                session, actor=Actor(None, "Ed", "editor", "agent:9"), options=options
            )
        with pytest.raises(tune_jobs.TuneJobNotFoundError):
            tune_jobs.request_cancel(session, job_id=10_000, actor=lead)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"max_minutes": "0"}, "max_minutes"),
        ({"max_minutes": "26"}, "max_minutes"),
        ({"max_minutes": "nan"}, "max_minutes"),
        ({"max_minutes": "\x00\xff" * 1000}, "max_minutes"),
        ({"epochs": "0"}, "epochs"),
        ({"epochs": "1.5"}, "epochs"),
        ({"epochs": "99999999999999999999"}, "epochs"),
    ],
)
def test_tune_options_refuse_bad_input_by_field(fields: dict[str, str], field: str) -> None:
    from bot.editor import tune_jobs
    from bot.editor.errors import EditorError

    with pytest.raises(EditorError) as caught:
        tune_jobs.TuneOptions.from_form(fields)
    assert [name for name, _ in caught.value.problems] == [field]


def test_a_browser_tune_starts_from_the_model_the_live_encoder_was_tuned_from(
    deployment: Path,
) -> None:
    import json

    from bot.editor import tune_jobs
    from knowledge.index import KnowledgeIndex
    from knowledge.store import publish as publish_build
    from knowledge.tuning import TUNE_RECORD_FILE, TuningError

    settings = get_settings()
    assert tune_jobs._start_from(settings) == (None, None)  # nothing built: packaged model
    encoder_dir = "encoders/all-mpnet-base-v2+tuned-0123"
    record = settings.index_dir / encoder_dir / TUNE_RECORD_FILE
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"base_model": "all-mpnet-base-v2"}), encoding="utf-8")
    articles = load_articles(deployment / "articles")
    publish_build(KnowledgeIndex.build(articles, FAKE, encoder_dir=encoder_dir), settings.index_dir)
    with pytest.raises(TuningError, match="not installed here"):  # never a silent switch
        tune_jobs._start_from(settings)

    installed = settings.models_dir / "all-mpnet-base-v2"
    installed.mkdir(parents=True)
    (installed / "modules.json").write_text("[]", encoding="utf-8")
    assert tune_jobs._start_from(settings) == (installed, "all-mpnet-base-v2")

    record.write_text("{not json", encoding="utf-8")
    with pytest.raises(TuningError, match="cannot be read"):
        tune_jobs._start_from(settings)


def test_a_running_tune_beats_its_heartbeat_between_steps(
    deployment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading, export and rebuild have no steps; the job must not look dead meanwhile."""
    import datetime as dt
    import threading

    from bot.editor import tune_jobs

    factory = create_session_factory(create_db_engine(get_settings().database_url))
    with factory() as session:
        job = tune_jobs.start_job(session, actor=_lead(factory), options=tune_jobs.TuneOptions())
        job.heartbeat_at = long_ago = tune_jobs.utcnow() - dt.timedelta(minutes=1)
        session.commit()
        job_id = job.id
    monkeypatch.setattr(tune_jobs, "ALIVE_SECONDS", 0.01)
    stop = threading.Event()
    beating = threading.Thread(target=tune_jobs._keep_alive, args=(factory, job_id, stop))
    beating.start()
    time.sleep(0.3)
    stop.set()
    beating.join(5)
    with factory() as session:
        beat = tune_jobs.get_job(session, job_id).heartbeat_at
    assert beat is not None and beat > long_ago + dt.timedelta(seconds=59)


def test_a_command_line_tune_is_a_job_the_editor_follows_and_can_cancel(
    deployment: Path,
    tunable: Tunable,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.editor import tune_jobs
    from knowledge import tuning

    tiny, factory, lead = str(tunable.tiny), tunable.factory, tunable.lead

    # Help and usage errors record no job.
    assert main(["kb", "tune", "--help"]) == 0
    assert main(["kb", "tune", "--epochs", "many"]) == 2
    with factory() as session:
        assert tune_jobs.latest_job(session) is None

    # A lead's tune is running: the command line waits its turn.
    with factory() as session:
        browser = tune_jobs.start_job(session, actor=lead, options=tune_jobs.TuneOptions())
    capsys.readouterr()
    assert main(["kb", "tune", "--start-from", tiny, "--max-minutes", "5"]) == 1
    assert "already running" in capsys.readouterr().err
    with factory() as session:
        tune_jobs.request_cancel(session, job_id=browser.id, actor=lead)
    assert tune_jobs.claim(factory, browser.id) is None  # its process ends it as cancelled

    # The command line's tune is a job: followed, and ended with its build.
    assert main(["kb", "tune", "--start-from", tiny, "--max-minutes", "5"]) == 0
    with factory() as session:
        job = tune_jobs.latest_job(session)
        assert job is not None and job.status == "succeeded" and job.active is None
        assert job.options == {"command": f"tune --start-from {tiny} --max-minutes 5"}
        assert job.requested_by_name.endswith("(command line)")
        assert job.steps_done == job.steps_planned > 0
        live = current_build(deployment / "kb-index")
        assert live is not None and job.build_id == live.name

    # Cancelled from the editor while it trains: it stops, and nothing is published.
    real_tune = tuning.tune_encoder

    def cancelled_meanwhile(*args: object, **kwargs: object) -> object:
        with factory() as session:
            running = tune_jobs.latest_job(session)
            assert running is not None and running.status == "running"
            tune_jobs.request_cancel(session, job_id=running.id, actor=lead)
        return real_tune(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tuning, "tune_encoder", cancelled_meanwhile)
    capsys.readouterr()
    assert main(["kb", "tune", "--start-from", tiny, "--max-minutes", "5"]) == 1
    assert "Cancelled from the editor" in " ".join(capsys.readouterr().err.split())
    assert current_build(deployment / "kb-index") == live
    with factory() as session:
        job = tune_jobs.latest_job(session)
        assert job is not None and job.status == "cancelled"


def test_a_cancel_after_the_last_step_still_stops_the_tune_before_it_publishes(
    deployment: Path, tunable: Tunable, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.editor import tune_jobs
    from knowledge import onnx_encoder

    before = current_build(deployment / "kb-index")
    factory, lead = tunable.factory, tunable.lead
    with factory() as session:
        job_id = tune_jobs.start_job(session, actor=lead, options=tune_jobs.TuneOptions()).id
    real_export = onnx_encoder.export_onnx_encoder

    def cancelled_while_exporting(*args: object, **kwargs: object) -> object:
        with factory() as session:  # training is over: no step will see this
            tune_jobs.request_cancel(session, job_id=job_id, actor=lead)
        return real_export(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(onnx_encoder, "export_onnx_encoder", cancelled_while_exporting)

    assert main(["kb", "tune", "--job", str(job_id)]) == 0

    assert current_build(deployment / "kb-index") == before
    with factory() as session:
        job = tune_jobs.get_job(session, job_id)
        assert job.status == "cancelled" and job.steps_done == job.steps_planned > 0
