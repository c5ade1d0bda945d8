from __future__ import annotations

import logging
import os
import threading

import pytest

from knowledge.articles import ArticleError, load_articles
from knowledge.index import IndexNotBuiltError, KnowledgeIndex
from knowledge.store import (
    LiveKnowledgeBase,
    build_and_publish,
    current_build,
    current_manifest,
    list_builds,
    load_current,
    publish,
    publish_articles,
)
from tests.helpers.fake_encoder import FakeEncoder


@pytest.fixture
def root(tmp_path):
    return tmp_path / "index"


@pytest.fixture
def index(articles_dir, encoder):
    return KnowledgeIndex.build(load_articles(articles_dir), encoder)


def test_publish_creates_build_and_points_current_at_it(index, root):
    build = publish(index, root)

    link = root / "current"
    assert link.is_symlink()
    assert os.readlink(link) == os.path.join("builds", build.name)
    assert current_build(root) == build
    assert KnowledgeIndex.exists(build)
    assert build.name.endswith(index.manifest.content_hash[:8])
    assert sorted(p.name for p in root.iterdir()) == ["builds", "current"]  # no temp leftovers


def test_publish_keeps_the_last_three_builds(index, root):
    builds = [publish(index, root) for _ in range(5)]

    assert list_builds(root) == builds[-3:]
    assert current_build(root) == builds[-1]
    assert not [p for p in (root / "builds").iterdir() if p.name.startswith(".")]


def test_publish_failure_leaves_the_live_build(index, root, monkeypatch):
    live = publish(index, root)

    def broken_save(directory):
        directory.mkdir(parents=True)
        raise OSError("disk full")

    monkeypatch.setattr(index, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        publish(index, root)

    assert current_build(root) == live
    assert list_builds(root) == [live]
    assert not [p for p in (root / "builds").iterdir() if p.name.startswith(".")]


def test_publish_refuses_a_real_current_folder(index, root):
    (root / "current").mkdir(parents=True)

    with pytest.raises(FileExistsError):
        publish(index, root)


def test_load_current(index, root, encoder):
    with pytest.raises(IndexNotBuiltError, match="python -m bot kb build"):
        load_current(root, encoder)

    publish(index, root)

    assert load_current(root, encoder).manifest == index.manifest


def test_live_knowledge_base_is_lazy(root, encoder):
    live = LiveKnowledgeBase(root, encoder)  # no folder, no error: nothing is read yet

    assert not root.exists()
    assert not live.is_ready()
    with pytest.raises(IndexNotBuiltError, match="python -m bot kb build"):
        live.search("password")


def test_live_knowledge_base_picks_up_a_new_build(articles_dir, root, encoder, make_article):
    publish(KnowledgeIndex.build(load_articles(articles_dir), encoder), root)
    live = LiveKnowledgeBase(root, encoder, check_interval=0)
    assert "orders-gift-wrapping" not in {hit.article_id for hit in live.search("gift", 10)}
    first_build = live.build_id

    make_article(
        articles_dir, "orders-gift-wrapping", title="Can you gift wrap my order?", body="Yes."
    )
    second = publish(KnowledgeIndex.build(load_articles(articles_dir), encoder), root)

    assert live.search("gift wrapping")[0].article_id == "orders-gift-wrapping"
    assert live.build_id == second.name != first_build
    assert live.manifest.article_count == 5
    assert live.article("orders-gift-wrapping").title == "Can you gift wrap my order?"


def test_live_knowledge_base_waits_for_check_interval(index, root, encoder):
    publish(index, root)
    live = LiveKnowledgeBase(root, encoder, check_interval=3600)
    live.search("password")
    first = live.build_id

    publish(index, root)

    live.search("password")
    assert live.build_id == first
    assert live.refresh() is True
    assert live.build_id != first


def test_live_knowledge_base_keeps_serving_when_new_build_is_corrupt(index, root, encoder, caplog):
    good = publish(index, root)
    live = LiveKnowledgeBase(root, encoder, check_interval=0)
    expected = live.search("reset password")

    bad = publish(index, root)
    (bad / "index.faiss").write_bytes(b"not a faiss index")
    with caplog.at_level(logging.ERROR, logger="knowledge.store"):
        assert live.search("reset password") == expected
        assert live.search("reset password") == expected  # the failure is logged only once

    assert live.build_id == good.name
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert bad.name in errors[0].getMessage()

    fixed = publish(index, root)
    live.search("reset password")
    assert live.build_id == fixed.name


def test_live_knowledge_base_first_load_of_corrupt_build_raises(index, root, encoder):
    build = publish(index, root)
    (build / "manifest.json").write_text("{}", encoding="utf-8")

    with pytest.raises(Exception, match="manifest"):
        LiveKnowledgeBase(root, encoder).search("password")


def test_live_knowledge_base_refuses_other_model(index, root):
    publish(index, root)

    assert not LiveKnowledgeBase(root, FakeEncoder(name="other")).is_ready()


def test_live_knowledge_base_concurrent_searches(index, root, encoder):
    publish(index, root)
    live = LiveKnowledgeBase(root, encoder, check_interval=0)
    results: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(20):
                results.append(live.search("reset my password", 1)[0].article_id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(3):
        publish(index, root)
    for thread in threads:
        thread.join()

    assert errors == []
    assert set(results) == {"account-reset-password"}


def test_build_and_publish_then_skip_when_unchanged(articles_dir, root, encoder):
    manifest = build_and_publish(articles_dir, root, encoder)
    calls = len(encoder.calls)

    again = publish_articles(articles_dir, root, encoder)

    assert manifest.article_count == 4
    assert again.skipped
    assert again.manifest == manifest
    assert len(encoder.calls) == calls  # nothing was encoded
    assert len(list_builds(root)) == 1

    forced = publish_articles(articles_dir, root, encoder, force=True)
    assert not forced.skipped
    assert len(list_builds(root)) == 2
    assert current_build(root) == forced.build_dir


def test_build_and_publish_rebuilds_for_another_model(articles_dir, root, encoder):
    build_and_publish(articles_dir, root, encoder)

    result = publish_articles(articles_dir, root, FakeEncoder(name="other-model"))

    assert not result.skipped
    assert current_manifest(root).model == "other-model"


def test_build_and_publish_refuses_malformed_articles(articles_dir, root, encoder, make_article):
    live = publish_articles(articles_dir, root, encoder).build_dir
    make_article(articles_dir, "broken", audience="martians")

    with pytest.raises(ArticleError) as caught:
        build_and_publish(articles_dir, root, encoder, force=True)

    assert caught.value.problems[0].field == "audience"
    assert current_build(root) == live
    assert list_builds(root) == [live]
