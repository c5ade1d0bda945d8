"""Bad article input and interrupted builds: clear problems, nothing half-published."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from knowledge import editor
from knowledge.articles import (
    MAX_BODY_CHARS,
    MAX_FILE_BYTES,
    MAX_QUESTION_CHARS,
    MAX_TITLE_CHARS,
    ArticleError,
    parse_article,
    validate_articles,
)
from knowledge.store import current_build, list_builds, load_current, publish_articles
from tests.helpers.fake_encoder import FakeEncoder

REPO = Path(__file__).resolve().parents[3]


def problems_of(path: Path) -> list:
    with pytest.raises(ArticleError) as caught:
        parse_article(path)
    return caught.value.problems


def test_a_10000_character_title_names_the_field_and_line(tmp_path, make_article):
    path = make_article(tmp_path, "long-title", title="W" * 10_000)

    [problem] = problems_of(path)

    assert problem.field == "title"
    assert problem.line == 3  # '---', 'id: ...', then the title
    assert f"the limit is {MAX_TITLE_CHARS}" in problem.message
    assert "10,000 characters" in problem.message
    assert str(problem).startswith(f"{path}:3: title: ")


def test_a_5_mb_body_is_refused_without_reading_it_all(tmp_path, make_article):
    path = make_article(tmp_path, "huge", body="All work and no play. " * 240_000)
    assert path.stat().st_size > 5_000_000

    started = time.perf_counter()
    [problem] = problems_of(path)

    assert time.perf_counter() - started < 1.0
    assert problem.field is None
    assert "5.3 MB" in problem.message and f"{MAX_FILE_BYTES / 1e6:.0f} MB" in problem.message


def test_a_body_over_the_limit_names_the_body_line(tmp_path, make_article):
    path = make_article(tmp_path, "long-body", body="Word " * (MAX_BODY_CHARS // 5 + 10))

    [problem] = problems_of(path)

    assert problem.field == "body"
    assert f"the limit is {MAX_BODY_CHARS:,}" in problem.message
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[problem.line - 1].startswith("Word Word")


def test_a_long_alternate_question(tmp_path, make_article):
    path = make_article(
        tmp_path, "long-question", questions=["ok?", "x" * (MAX_QUESTION_CHARS + 1)]
    )

    [problem] = problems_of(path)

    assert problem.field == "questions"
    assert "entry 2 is longer than" in problem.message


def write_bad_folder(folder: Path, make_article) -> dict[str, str]:
    """One good article and one of each kind of bad input; returns file -> expected words."""
    make_article(folder, "good-one", title="A good question?", body="A good answer.")
    (folder / "broken-front.md").write_text("---\nid: broken-front\ntitle: [unclosed\n---\nx\n")
    make_article(folder, "dup", filename="dup.md")
    make_article(folder, "dup", filename="sub/dup.md")
    make_article(folder, "empty-body", body="")
    make_article(folder, "huge-body", body="Lorem ipsum dolor. " * 280_000)
    (folder / "latin1.md").write_bytes(b"---\nid: latin1\n---\nCaf\xe9\n")
    make_article(folder, "long-title", title="T" * 10_000)
    return {
        "broken-front.md": "invalid YAML in front matter on line",
        "dup.md": "duplicate id 'dup'",
        "empty-body.md": "no text after the front matter",
        "huge-body.md": "the limit is 1 MB",
        "latin1.md": "not valid UTF-8 (byte 0xe9 on line 4)",
        "long-title.md": "the limit is 500",
    }


def test_every_bad_file_is_named_and_nothing_is_published(tmp_path, make_article):
    articles = tmp_path / "articles"
    expected = write_bad_folder(articles, make_article)
    root = tmp_path / "index"

    problems = validate_articles(articles)

    for name, words in expected.items():
        assert any(p.path.name == name and words in p.message for p in problems), name
    assert not any(p.path.name == "good-one.md" for p in problems)
    with pytest.raises(ArticleError):
        publish_articles(articles, root, FakeEncoder())
    assert current_build(root) is None
    assert not (root / "builds").exists() or list_builds(root) == []


def test_kb_validate_and_build_report_the_files_and_keep_the_live_build(
    tmp_path, make_article, capsys, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "300")
    articles, root = tmp_path / "articles", tmp_path / "index"
    make_article(articles, "good-one", title="A good question?", body="A good answer.")
    live = publish_articles(articles, root, FakeEncoder()).build_dir
    expected = write_bad_folder(articles, make_article)
    dirs = ["--articles-dir", str(articles), "--index-dir", str(root)]

    validate = editor.main(["validate", *dirs], encoder=FakeEncoder())
    out = capsys.readouterr().out
    build = editor.main(["build", *dirs], encoder=FakeEncoder())
    build_out = capsys.readouterr()

    assert validate == 1 and build != 0
    for name in expected:
        assert name in out
    assert "long-title.md:3: title:" in out
    assert "Traceback" not in out + build_out.out + build_out.err
    assert current_build(root) == live
    assert list_builds(root) == [live]


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from knowledge.index import KnowledgeIndex
    from knowledge.store import publish_articles
    from tests.helpers.fake_encoder import FakeEncoder

    articles, root, marker = (Path(value) for value in sys.argv[1:4])
    stage = sys.argv[4]

    class SlowEncoder(FakeEncoder):
        def encode(self, texts):
            if stage == "encoding":
                marker.write_text("encoding")
                time.sleep(60)
            return super().encode(texts)

    if stage == "saving":
        original = KnowledgeIndex.save
        def slow_save(self, directory):
            original(self, directory)  # the temporary build is written, not yet renamed
            marker.write_text("saving")
            time.sleep(60)
        KnowledgeIndex.save = slow_save

    publish_articles(articles, root, SlowEncoder(), reuse=False)
    """
)


@pytest.mark.parametrize("stage", ["encoding", "saving"])
def test_a_build_killed_half_way_leaves_the_live_build(tmp_path, make_article, stage):
    articles, root = tmp_path / "articles", tmp_path / "index"
    make_article(articles, "returns", title="How do I return an item?", body="Within 30 days.")
    live = publish_articles(articles, root, FakeEncoder()).build_dir
    make_article(articles, "gift-wrap", title="Can you gift wrap my order?", body="Yes.")
    marker = tmp_path / "marker"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(articles), str(root), str(marker), stage],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None, "the build finished or failed before it was killed"
            assert time.monotonic() < deadline, "the build never reached its stage"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

    assert child.returncode == -signal.SIGKILL
    assert current_build(root) == live
    assert list_builds(root) == [live]
    assert "gift-wrap" not in load_current(root, FakeEncoder())
    # the next build works, and is live
    result = publish_articles(articles, root, FakeEncoder())
    assert current_build(root) == result.build_dir != live
    assert "gift-wrap" in load_current(root, FakeEncoder())
