"""The knowledge editor's service on a real database file: revisions, review, rollback, retire,
publishing (with the fake encoder, into a real index root) and two publishers at once."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.audit.models import AuditEvent
from bot.editor import service
from bot.editor.diff import diff_lines
from bot.editor.errors import (
    ArticleExistsError,
    ArticleNotFoundError,
    InvalidArticleError,
    PublishBusyError,
    PublishFailedError,
    ReviewError,
    StaleRevisionError,
)
from bot.editor.models import KbArticle, KbPublication, RevisionState
from bot.editor.publishing import PublishTarget, publish
from bot.editor.service import Actor
from knowledge.articles import load_articles
from knowledge.store import current_build, load_current
from tests.helpers.desk import make_user
from tests.helpers.fake_encoder import FakeEncoder

ENCODER = FakeEncoder()


def fields(article_id: str = "returns-label-lost", **overrides: Any) -> dict[str, Any]:
    base = {
        "id": article_id,
        "title": "I lost my return label",
        "audience": "b2c",
        "owner": "returns-team",
        "questions": "Where is my return label?\nreturn label missing",
        "tags": "returns, labels",
        "body": "Download a new label from My orders.\n\n## Details\n\nLabels last 30 days.",
    }
    base.update(overrides)
    return service.content_from_fields(base)


@pytest.fixture
def factory(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """A migrated database (SQLite here; tests/integration/postgres re-runs on PostgreSQL)."""
    return session_factory


@pytest.fixture
def people(factory: sessionmaker[Session]) -> dict[str, Actor]:
    result = {}
    for name, role in (("edna", "editor"), ("lee", "lead"), ("lou", "lead"), ("al", "agent")):
        user = make_user(factory, email=f"{name}@example.com", role=role)
        result[name] = Actor(user.id, name.title(), role, f"agent:{user.id}")
    return result


@pytest.fixture
def target(tmp_path: Path) -> PublishTarget:
    return PublishTarget(tmp_path / "index", None, lambda: ENCODER)


def test_save_creates_numbered_revisions_and_double_save_is_one(
    factory: sessionmaker[Session], people: dict[str, Actor]
) -> None:
    with factory() as session:
        first = service.create_article(session, content=fields(), actor=people["edna"])
        second = service.save_revision(
            session,
            article_id="returns-label-lost",
            content=fields(title="I lost my return label!"),
            actor=people["edna"],
            base_number=1,
        )
        again = service.save_revision(
            session,
            article_id="returns-label-lost",
            content=fields(title="I lost my return label!"),
            actor=people["edna"],
            base_number=2,
        )
        history = service.revisions_of(session, "returns-label-lost")
        actions = session.scalars(select(AuditEvent.action)).all()
    assert (first.number, second.number, again.number) == (1, 2, 2)
    assert [r.state for r in history] == ["draft", "superseded"]
    assert history[0].author_name == "Edna"
    assert actions.count("kb.saved") == 2


def test_stale_base_duplicate_id_and_invalid_content_are_refused(
    factory: sessionmaker[Session], people: dict[str, Actor]
) -> None:
    editor = people["edna"]
    with factory() as session:
        service.create_article(session, content=fields(), actor=editor)
        service.save_revision(
            session, article_id="returns-label-lost", content=fields(owner="x"), actor=editor
        )
        with pytest.raises(StaleRevisionError):
            service.save_revision(
                session,
                article_id="returns-label-lost",
                content=fields(owner="y"),
                actor=editor,
                base_number=1,
            )
        with pytest.raises(ArticleExistsError):
            service.create_article(session, content=fields(), actor=editor)
        with pytest.raises(InvalidArticleError) as empty:
            service.create_article(session, content=fields("other", body="  "), actor=editor)
        assert any(field == "body" for field, _ in empty.value.problems)
        with pytest.raises(InvalidArticleError) as long_title:
            service.create_article(
                session, content=fields("other", title="x" * 10_000), actor=editor
            )
        assert long_title.value.problems[0][0] == "title"
        with pytest.raises(InvalidArticleError):
            service.create_article(
                session, content=fields("other", body="y" * 5_000_000), actor=editor
            )
        with pytest.raises(InvalidArticleError):
            service.create_article(session, content=fields("Bad Id"), actor=editor)
        with pytest.raises(ArticleNotFoundError):
            service.get_revision(session, "returns-label-lost", 99)
        with pytest.raises(ArticleNotFoundError):
            service.get_article(session, "../../etc/passwd")
        with pytest.raises(ReviewError):
            service.create_article(session, content=fields("other"), actor=people["al"])


def test_review_rules(factory: sessionmaker[Session], people: dict[str, Actor]) -> None:
    with factory() as session:
        service.create_article(session, content=fields(), actor=people["lee"])
        with pytest.raises(ReviewError, match="another lead"):
            service.review_revision(
                session,
                article_id="returns-label-lost",
                number=1,
                actor=people["lee"],
                approve=True,
            )
        with pytest.raises(ReviewError, match="lead or an admin"):
            service.review_revision(
                session,
                article_id="returns-label-lost",
                number=1,
                actor=people["edna"],
                approve=True,
            )
        service.submit_for_review(
            session, article_id="returns-label-lost", number=1, actor=people["lee"]
        )
        assert [r.number for r in service.review_queue(session)] == [1]
        with pytest.raises(ReviewError, match="why"):
            service.review_revision(
                session,
                article_id="returns-label-lost",
                number=1,
                actor=people["lou"],
                approve=False,
            )
        rejected = service.review_revision(
            session,
            article_id="returns-label-lost",
            number=1,
            actor=people["lou"],
            approve=False,
            comment="Say how long labels last.",
        )
        assert rejected.state == "rejected" and rejected.reviewer_id == people["lou"].agent_id
        assert service.pending_changes(session, require_review=True) == []
        service.save_revision(
            session,
            article_id="returns-label-lost",
            content=fields(owner="ops"),
            actor=people["edna"],
        )
        service.submit_for_review(
            session, article_id="returns-label-lost", number=2, actor=people["edna"]
        )
        service.review_revision(
            session, article_id="returns-label-lost", number=2, actor=people["lou"], approve=True
        )
        assert service.pending_changes(session, require_review=True) == [
            ("returns-label-lost", "new")
        ]


def test_publish_rollback_retire_restore(
    factory: sessionmaker[Session], people: dict[str, Actor], target: PublishTarget
) -> None:
    editor = people["edna"]
    with factory() as session:
        service.create_article(session, content=fields(), actor=editor)
        service.create_article(
            session,
            content=fields("orders-track", title="Where is my order?", questions="track parcel"),
            actor=editor,
        )
    first = publish(factory, target, actor=editor, require_review=False)
    assert first.articles == 2 and sorted(first.changes) == [
        ("orders-track", "new"),
        ("returns-label-lost", "new"),
    ]
    index = load_current(target.index_dir, ENCODER)
    assert sorted(a.id for a in index) == ["orders-track", "returns-label-lost"]

    with factory() as session:
        service.save_revision(
            session,
            article_id="returns-label-lost",
            content=fields(body="Print the label again from the e-mail we sent."),
            actor=editor,
        )
    publish(factory, target, actor=editor, require_review=False)
    live = load_current(target.index_dir, ENCODER).article("returns-label-lost")
    assert live is not None and live.body.startswith("Print the label again")

    with factory() as session:
        revision = service.rollback(
            session, article_id="returns-label-lost", number=1, actor=editor
        )
        assert revision.number == 3 and revision.note == "rollback to revision 1"
        states = [r.state for r in service.revisions_of(session, "returns-label-lost")]
        assert states == ["draft", "published", "superseded"]
    publish(factory, target, actor=editor, require_review=False)
    live = load_current(target.index_dir, ENCODER).article("returns-label-lost")
    assert live is not None and live.body.startswith("Download a new label")

    with factory() as session:
        service.set_retired(session, article_id="orders-track", actor=editor, retired=True)
        assert service.pending_changes(session, require_review=False) == [
            ("orders-track", "retire")
        ]
    publish(factory, target, actor=editor, require_review=False)
    assert "orders-track" not in load_current(target.index_dir, ENCODER)
    with factory() as session:
        assert len(service.revisions_of(session, "orders-track")) == 1  # history stays
        service.set_retired(session, article_id="orders-track", actor=editor, retired=False)
        assert service.pending_changes(session, require_review=False) == [
            ("orders-track", "restore")
        ]
    publish(factory, target, actor=editor, require_review=False)
    assert "orders-track" in load_current(target.index_dir, ENCODER)
    with factory() as session:
        actions = set(session.scalars(select(AuditEvent.action)))
        statuses = set(session.scalars(select(KbPublication.status)))
    assert {"kb.published", "kb.rolled_back", "kb.retired", "kb.restored"} <= actions
    assert statuses == {"succeeded"}


def test_a_failed_publish_changes_nothing_and_is_recorded(
    factory: sessionmaker[Session], people: dict[str, Actor], target: PublishTarget
) -> None:
    with factory() as session:
        service.create_article(session, content=fields(), actor=people["edna"])
    first = publish(factory, target, actor=people["edna"], require_review=False)
    with factory() as session:
        service.save_revision(
            session,
            article_id="returns-label-lost",
            content=fields(owner="ops"),
            actor=people["edna"],
        )

    def broken() -> FakeEncoder:
        raise RuntimeError("model files missing")

    failing = PublishTarget(target.index_dir, None, broken)
    with pytest.raises(PublishFailedError, match="nothing was published"):
        publish(factory, failing, actor=people["edna"], require_review=False)
    assert current_build(target.index_dir) is not None
    assert current_build(target.index_dir).name == first.build_id  # type: ignore[union-attr]
    with factory() as session:
        assert service.pending_changes(session, require_review=False) == [
            ("returns-label-lost", "update")
        ]
        failed = session.scalars(
            select(KbPublication).where(KbPublication.status == "failed")
        ).one()
        assert "model files missing" in failed.error
        assert "kb.publish_failed" in set(session.scalars(select(AuditEvent.action)))
    again = publish(factory, target, actor=people["edna"], require_review=False)  # lock freed
    assert again.changes == [("returns-label-lost", "update")]


def test_review_setting_publishes_only_approved(
    factory: sessionmaker[Session], people: dict[str, Actor], target: PublishTarget
) -> None:
    with factory() as session:
        service.create_article(session, content=fields(), actor=people["edna"])
        service.create_article(session, content=fields("orders-track"), actor=people["edna"])
        service.review_revision(
            session, article_id="orders-track", number=1, actor=people["lee"], approve=True
        )
    publish(factory, target, actor=people["edna"], require_review=True)
    assert [a.id for a in load_current(target.index_dir, ENCODER)] == ["orders-track"]


def test_two_publishers_at_once_one_is_told_to_retry(
    factory: sessionmaker[Session], people: dict[str, Actor], target: PublishTarget
) -> None:
    with factory() as session:
        service.create_article(session, content=fields(), actor=people["edna"])
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        inside.set()
        assert release.wait(10)

    outcome: dict[str, Any] = {}

    def first() -> None:
        outcome["first"] = publish(
            factory, target, actor=people["edna"], require_review=False, before_build=hold
        )

    thread = threading.Thread(target=first)
    thread.start()
    assert inside.wait(10)
    barrier = threading.Barrier(3)
    errors: list[Exception] = []

    def second() -> None:
        barrier.wait()
        try:
            publish(factory, target, actor=people["lee"], require_review=False)
        except PublishBusyError as exc:
            errors.append(exc)

    others = [threading.Thread(target=second) for _ in range(3)]
    for other in others[:2]:
        other.start()
    barrier.wait()
    for other in others[:2]:
        other.join(10)
    release.set()
    thread.join(20)
    assert len(errors) == 2 and "try again" in errors[0].message
    assert outcome["first"].articles == 1
    # The lock is free again: a later publish runs (nothing changed: the build is kept).
    again = publish(factory, target, actor=people["lee"], require_review=False)
    assert again.skipped and again.build_id == outcome["first"].build_id


def test_simultaneous_publishes_never_build_twice_at_once(
    factory: sessionmaker[Session], people: dict[str, Actor], target: PublishTarget
) -> None:
    """Eight threads click publish together: each either publishes or is told to retry."""
    with factory() as session:
        service.create_article(session, content=fields(), actor=people["edna"])
    running = 0
    most = 0
    guard = threading.Lock()

    def during() -> None:
        nonlocal running, most
        with guard:
            running += 1
            most = max(most, running)
        threading.Event().wait(0.2)
        with guard:
            running -= 1

    results: list[str] = []
    start = threading.Barrier(8)

    def click() -> None:
        start.wait()
        try:
            publish(
                factory, target, actor=people["edna"], require_review=False, before_build=during
            )
            results.append("ok")
        except PublishBusyError:
            results.append("busy")

    threads = [threading.Thread(target=click) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert most == 1
    assert results.count("ok") >= 1 and len(results) == 8
    assert current_build(target.index_dir) is not None


def test_import_and_export_round_trip(
    factory: sessionmaker[Session], tmp_path: Path, target: PublishTarget
) -> None:
    seed = Path(__file__).resolve().parents[3] / "knowledge" / "articles"
    cli = Actor.command_line()
    with factory() as session:
        count = service.import_articles(session, seed, actor=cli)
        assert count == len(load_articles(seed))
        assert service.import_articles(session, seed, actor=cli) == 0  # only when empty
    publish(factory, target, actor=cli, require_review=False)
    with factory() as session:
        assert all(row.in_live_build for row in session.scalars(select(KbArticle)))
        files = service.export_articles(session, tmp_path / "export")
    exported = load_articles(tmp_path / "export")
    assert len(files) == count
    assert [a.canonical_content() for a in exported] == [
        a.canonical_content() for a in load_articles(seed)
    ]


def test_diff_marks_changed_lines() -> None:
    old = fields()
    new = fields(body="Download a new label from My orders.\n\n<script>x</script>")
    lines = diff_lines(old, new)
    assert any(line.kind == "added" and "<script>" in line.text for line in lines)
    assert any(line.kind == "removed" and "Labels last 30 days." in line.text for line in lines)
    assert diff_lines(old, old) == []
    assert RevisionState.PUBLISHED.value == "published"
