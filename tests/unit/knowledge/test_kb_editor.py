from __future__ import annotations

import re

import pytest

from knowledge import editor
from knowledge.articles import parse_article, validate_articles
from knowledge.store import current_build, list_builds
from tests.helpers.fake_encoder import FakeEncoder


@pytest.fixture
def run(tmp_path, encoder, capsys, monkeypatch):
    """Run the editor with folders under tmp_path; return (exit code, stdout, stderr)."""
    monkeypatch.setenv("COLUMNS", "200")  # keep table rows on one line

    def run(*argv: str, articles=None, index=None):
        dirs = [
            "--articles-dir",
            str(articles or tmp_path / "articles"),
            "--index-dir",
            str(index or tmp_path / "index"),
        ]
        code = editor.main([*argv, *dirs], encoder=encoder)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_module_docstring_has_usage():
    assert "Usage:" in (editor.__doc__ or "")


def test_validate_good_folder(run, articles_dir):
    code, out, _ = run("validate")

    assert code == 0
    assert "✓ 4 articles are valid" in out


def test_validate_bad_folder(run, articles_dir, make_article):
    bad = make_article(articles_dir, "bad-one", audience="aliens", owner=None)

    code, out, _ = run("validate")

    assert code == 1
    lines = out.splitlines()
    assert any(line.endswith("bad-one.md: owner: required field is missing") for line in lines)
    assert any(
        re.search(r"bad-one\.md:\d+: audience: must be one of b2c, b2b, all", line)
        for line in lines
    )
    assert "✗ 2 problems in 1 file" in out
    assert str(bad.name) in out


def test_build_then_search(run, articles_dir, tmp_path):
    code, out, _ = run("build")

    assert code == 0
    assert "Built 4 articles" in out
    build = current_build(tmp_path / "index")
    assert build is not None and build.name in out

    code, out, _ = run("search", "I forgot my password", "--limit", "2")

    assert code == 0
    assert "account-reset-password" in out
    assert "How do I reset my password?" in out
    assert "Answer: Select Forgot password" in out


def test_build_skips_unchanged_and_force_rebuilds(run, articles_dir, tmp_path):
    run("build")

    code, out, _ = run("build")
    assert code == 0
    assert "unchanged" in out
    assert len(list_builds(tmp_path / "index")) == 1

    code, out, _ = run("build", "--force")
    assert code == 0
    assert len(list_builds(tmp_path / "index")) == 2


def test_build_with_problems_leaves_live_index(run, articles_dir, make_article, tmp_path):
    run("build")
    live = current_build(tmp_path / "index")
    make_article(articles_dir, "broken", body="")

    code, out, _ = run("build", "--force")

    assert code == 1
    assert re.search(r"broken\.md:\d+: body:", out)
    assert "the live index was left unchanged" in out
    assert current_build(tmp_path / "index") == live


def test_search_without_index(run, articles_dir):
    code, _, err = run("search", "password")

    assert code == 1
    assert "python -m bot kb build" in err


def test_search_with_index_from_another_model(run, articles_dir, tmp_path, capsys):
    run("build")

    code = editor.main(
        ["search", "password", "--index-dir", str(tmp_path / "index")],
        encoder=FakeEncoder(name="other"),
    )

    assert code == 1
    assert "--force" in capsys.readouterr().err


def test_new_creates_a_valid_article(run, tmp_path):
    code, out, _ = run("new", "--id", "returns-label-lost", "--title", "I lost my label")

    path = tmp_path / "articles" / "returns-label-lost.md"
    assert code == 0
    assert "returns-label-lost.md" in out
    assert "python -m bot kb validate" in out
    article = parse_article(path)
    assert (article.title, article.audience, article.owner) == (
        "I lost my label",
        "all",
        "support-team",
    )
    assert validate_articles(tmp_path / "articles") == []


def test_new_with_audience_and_owner(run, tmp_path):
    run("new", "--id", "b2b-x", "--title", "T", "--audience", "b2b", "--owner", "sales")

    article = parse_article(tmp_path / "articles" / "b2b-x.md")
    assert (article.audience, article.owner) == ("b2b", "sales")


def test_new_refuses_to_overwrite(run, articles_dir):
    before = (articles_dir / "account-reset-password.md").read_text(encoding="utf-8")

    code, _, err = run("new", "--id", "account-reset-password", "--title", "Other")

    assert code == 1
    assert "already exists" in err
    assert (articles_dir / "account-reset-password.md").read_text(encoding="utf-8") == before


def test_new_rejects_a_bad_id(run, tmp_path):
    code, _, err = run("new", "--id", "Lost Label!", "--title", "T")

    assert code == 2
    assert "'Lost Label!' is not a valid article id" in err
    assert "try 'lost-label'" in err
    assert not (tmp_path / "articles").exists()


def test_list(run, articles_dir):
    code, out, _ = run("list")

    assert code == 0
    assert "4 articles" in out
    assert "business-volume-pricing" in out
    assert "2026-10-14" in out


def test_usage_errors_return_2(capsys):
    assert editor.main([]) == 2
    assert editor.main(["search", "q", "--limit", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err


def test_help_returns_0(capsys):
    assert editor.main(["--help"], prog="python -m bot kb") == 0
    assert "python -m bot kb" in capsys.readouterr().out


def test_search_says_what_the_bot_would_do(run, articles_dir):
    run("build")

    code, out, _ = run("search", "I forgot my password")

    assert code == 0
    assert "the bot would answer with account-reset-password" in out


def test_search_json_prints_hits_and_band(run, articles_dir):
    import json

    run("build")

    code, out, _ = run("search", "I forgot my password", "--json", "--limit", "2")

    assert code == 0
    data = json.loads(out)
    assert data["band"] == "answer"
    assert data["answer"] == "account-reset-password"
    assert data["segment"] is None
    assert len(data["hits"]) == 2
    assert data["hits"][0]["article_id"] == "account-reset-password"
    assert set(data["hits"][0]) == {
        "rank",
        "article_id",
        "title",
        "score",
        "audience",
        "matched_text",
    }


def test_search_names_the_out_of_scope_article_that_declined(run, articles_dir, make_article):
    import json

    make_article(
        articles_dir,
        "not-ours",
        audience="all",
        tags=["out-of-scope"],
        questions=["weather forecast for the weekend"],
    )
    run("build")

    _, declined, _ = run("search", "weather forecast for the weekend", "--json")
    _, answered, _ = run("search", "I forgot my password", "--json")
    _, text, _ = run("search", "weather forecast for the weekend")

    assert json.loads(declined)["declined_by"] == "not-ours"
    assert json.loads(declined)["band"] == "unknown" and json.loads(declined)["hits"] == []
    assert json.loads(answered)["declined_by"] is None
    assert "Declined: the out-of-scope article not-ours ranked first." in text
    assert "does not know" in text


def test_search_json_matches_answer_question(run, articles_dir, tmp_path, encoder):
    """``kb search`` runs the bot's own decision: same band and hits as answer_question."""
    import json

    from knowledge.answering import AnswerPolicy, answer_question
    from knowledge.store import load_current

    run("build")
    policy = AnswerPolicy(answer_threshold=0.9, suggest_threshold=0.2, limit=3)

    code, out, _ = run(
        "search",
        "bulk discount for office chairs",
        "--json",
        "--segment",
        "b2b",
        "--answer-threshold",
        "0.9",
        "--suggest-threshold",
        "0.2",
    )

    expected = answer_question(
        load_current(tmp_path / "index", encoder),
        "bulk discount for office chairs",
        segment="b2b",
        policy=policy,
    )
    assert code == 0
    assert json.loads(out) == {**expected.to_dict(), "declined_by": None}
    assert json.loads(out)["band"] == "suggest"


def test_search_business_articles_only_for_business_contacts(run, articles_dir):
    import json

    run("build")
    question = "volume discounts for businesses"

    _, consumer, _ = run("search", question, "--json", "--answer-threshold", "0.99")
    _, business, _ = run(
        "search", question, "--json", "--segment", "b2b", "--answer-threshold", "0.99"
    )

    assert "business-volume-pricing" not in [h["article_id"] for h in json.loads(consumer)["hits"]]
    assert json.loads(business)["hits"][0]["article_id"] == "business-volume-pricing"


def test_suggest_threshold_above_answer_threshold_is_a_usage_error(run, articles_dir):
    code, _, err = run("search", "q", "--answer-threshold", "0.3", "--suggest-threshold", "0.5")

    assert code == 2
    assert "suggest_threshold must not be above answer_threshold" in err


def test_defaults_come_from_the_caller(tmp_path, encoder, articles_dir, capsys):
    """``python -m bot kb`` passes its settings as EditorDefaults; no settings are read here."""
    import json

    from knowledge.answering import AnswerPolicy

    defaults = editor.EditorDefaults(
        articles_dir=articles_dir,
        index_dir=tmp_path / "elsewhere",
        policy=AnswerPolicy(answer_threshold=0.99, suggest_threshold=0.98, limit=1),
    )
    assert editor.main(["build"], encoder=encoder, defaults=defaults) == 0
    assert current_build(tmp_path / "elsewhere") is not None
    capsys.readouterr()

    assert editor.main(["search", "password", "--json"], encoder=encoder, defaults=defaults) == 0

    data = json.loads(capsys.readouterr().out)
    assert (data["answer_threshold"], data["suggest_threshold"]) == (0.99, 0.98)
    assert len(data["hits"]) == 1


def test_build_reuses_the_live_vectors_unless_told_not_to(run, articles_dir, make_article):
    run("build")
    make_article(articles_dir, "gift-wrap", title="Can you gift wrap my order?", body="Yes.")

    code, out, _ = run("build")
    assert code == 0
    assert re.search(r"Built 5 articles, (\d+) vectors \(2 encoded, \d+ reused\)", out)

    code, out, _ = run("build", "--force", "--no-reuse")
    assert code == 0
    vectors = re.search(r"Built 5 articles, (\d+) vectors \((\d+) encoded, 0 reused\)", out)
    assert vectors and vectors.group(1) == vectors.group(2)
