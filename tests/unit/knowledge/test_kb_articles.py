from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import yaml

from knowledge.articles import (
    Article,
    ArticleError,
    ArticleProblem,
    extract_summary,
    load_articles,
    parse_article,
    render_new_article,
    scan_articles,
    validate_articles,
)


def only_problem(path: Path) -> ArticleProblem:
    with pytest.raises(ArticleError) as caught:
        parse_article(path)
    assert len(caught.value.problems) == 1, caught.value.problems
    problem = caught.value.problems[0]
    assert problem.path == path
    return problem


def test_parses_a_valid_article(tmp_path, make_article):
    path = make_article(
        tmp_path,
        "returns-start-a-return",
        title="How do I return an item?",
        tags=["returns", "orders"],
        questions=["Can I send back something I bought?"],
        body="Start a return from My orders.\n\n## Details\n\nMore text.",
    )

    article = parse_article(path)

    assert article == Article(
        id="returns-start-a-return",
        title="How do I return an item?",
        audience="b2c",
        tags=["returns", "orders"],
        questions=["Can I send back something I bought?"],
        language="en",
        updated=datetime.date(2026, 10, 14),
        owner="support-team",
        body="Start a return from My orders.\n\n## Details\n\nMore text.",
        path=path,
    )
    assert article.summary == "Start a return from My orders."


def test_accepts_empty_lists_crlf_and_bom(tmp_path, make_text):
    path = tmp_path / "a.md"
    text = make_text("a", tags=[], questions=[]).replace("\n", "\r\n")
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))

    article = parse_article(path)

    assert (article.tags, article.questions, article.body) == ([], [], "A short answer.")


def test_missing_field_names_file_and_field(tmp_path, make_article):
    path = make_article(tmp_path, "a", owner=None)

    problem = only_problem(path)

    assert (problem.field, problem.message) == ("owner", "required field is missing")
    assert str(problem) == f"{path}: owner: required field is missing"


def test_reports_every_problem_of_a_file(tmp_path, make_article):
    path = make_article(tmp_path, "a", owner=None, audience="everyone", tags="returns")

    with pytest.raises(ArticleError) as caught:
        parse_article(path)

    fields = sorted(problem.field or "" for problem in caught.value.problems)
    assert fields == ["audience", "owner", "tags"]
    assert str(path) in str(caught.value)


def test_bad_audience(tmp_path, make_article):
    problem = only_problem(make_article(tmp_path, "a", audience="consumers"))

    assert problem.field == "audience"
    assert problem.message == "must be one of b2c, b2b, all, got 'consumers'"


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"title": ""}, "title", "must not be empty"),
        ({"title": True}, "title", "must be text, got true"),
        ({"updated": "last week"}, "updated", "must be a date like 2026-10-14"),
        ({"questions": "just one"}, "questions", "must be a list"),
        ({"questions": ["ok", ""]}, "questions", "entry 2 is empty"),
        ({"id": "Bad_Id"}, "id", "is not a valid id"),
        ({"colour": "red"}, "colour", "unknown field"),
    ],
)
def test_invalid_fields(tmp_path, make_article, fields, field, fragment):
    filename = "Bad_Id.md" if fields.get("id") == "Bad_Id" else None
    path = make_article(tmp_path, "a", filename=filename, **fields)

    problem = only_problem(path)

    assert problem.field == field
    assert fragment in problem.message


def test_id_must_equal_file_stem(tmp_path, make_article):
    problem = only_problem(make_article(tmp_path, "returns-x", filename="returns-y.md"))

    assert problem.field == "id"
    assert "'returns-x' does not match the file name" in problem.message
    assert "returns-x.md" in problem.message


def test_broken_yaml_gives_the_line(tmp_path):
    path = tmp_path / "a.md"
    path.write_text("---\nid: a\ntitle: [unclosed\naudience: b2c\n---\nBody.\n", encoding="utf-8")

    problem = only_problem(path)

    assert problem.field is None
    assert problem.message.startswith("invalid YAML in front matter on line ")
    line = int(problem.message.split("on line ")[1].split(":")[0])
    assert 3 <= line <= 5


def test_impossible_date_is_a_field_problem_not_a_crash(tmp_path, make_text):
    path = tmp_path / "a.md"
    path.write_text(make_text("a").replace("'2026-10-14'", "2026-13-45"), encoding="utf-8")

    problem = only_problem(path)

    assert problem.field == "updated"
    assert problem.message == "must be a date like 2026-10-14, got '2026-13-45'"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("Just some text without front matter.\n", "missing front matter"),
        ("---\nid: a\ntitle: T\n", "front matter is not closed"),
        ("---\n- a\n- b\n---\nBody\n", "front matter must be 'field: value' lines"),
    ],
)
def test_broken_front_matter(tmp_path, text, fragment):
    path = tmp_path / "a.md"
    path.write_text(text, encoding="utf-8")

    problem = only_problem(path)

    assert problem.field is None
    assert fragment in problem.message


def test_empty_body(tmp_path, make_article):
    problem = only_problem(make_article(tmp_path, "a", body="\n   \n"))

    assert problem.field == "body"
    assert "no text after the front matter" in problem.message


def test_invalid_utf8(tmp_path, make_text):
    path = tmp_path / "a.md"
    path.write_bytes(make_text("a", title="Caf\u00e9").encode("latin-1"))

    problem = only_problem(path)

    assert problem.field is None
    assert problem.message.startswith("not valid UTF-8 (byte 0xe9 on line 3)")


def test_binary_file(tmp_path):
    path = tmp_path / "a.md"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")

    problem = only_problem(path)

    assert problem.message == "binary file, expected UTF-8 Markdown text"


def test_unreadable_file(tmp_path):
    path = tmp_path / "a.md"
    path.mkdir()  # reading a directory fails like an unreadable file

    problem = only_problem(path)

    assert problem.message.startswith("cannot read file")


def test_load_articles_sorted_and_skips_readme(articles_dir, make_article):
    (articles_dir / "README.md").write_text("# How to write articles\n", encoding="utf-8")
    (articles_dir / "_template.md").write_text("draft\n", encoding="utf-8")
    make_article(articles_dir / "topic", "nested-article")

    ids = [article.id for article in load_articles(articles_dir)]

    assert ids == sorted(ids)
    assert set(ids) == {
        "account-reset-password",
        "business-volume-pricing",
        "delivery-track-order",
        "nested-article",
        "returns-start-a-return",
    }


def test_load_articles_lists_all_problems(articles_dir, make_article):
    bad_audience = make_article(articles_dir, "bad-audience", audience="x")
    no_owner = make_article(articles_dir, "no-owner", owner=None)

    with pytest.raises(ArticleError) as caught:
        load_articles(articles_dir)

    assert {problem.path for problem in caught.value.problems} == {bad_audience, no_owner}
    assert "2 article problems" in caught.value.message


def test_duplicate_ids_across_folders(tmp_path, make_article):
    first = make_article(tmp_path / "a", "same-id")
    second = make_article(tmp_path / "b", "same-id")

    problems = validate_articles(tmp_path)
    articles, _ = scan_articles(tmp_path)

    assert len(problems) == 1
    assert problems[0].path == second
    assert problems[0].field == "id"
    assert f"duplicate id 'same-id', also used by {first}" in problems[0].message
    assert articles == []


def test_validate_articles_good_folder_and_missing_folder(articles_dir, tmp_path):
    assert validate_articles(articles_dir) == []

    problems = validate_articles(tmp_path / "nope")

    assert [(p.field, p.message) for p in problems] == [(None, "articles folder not found")]


def test_summary_is_first_paragraph_joined_and_skips_leading_heading():
    body = "# Heading\n\nFirst line\nsecond line.\n\nSecond paragraph."

    assert extract_summary(body) == "First line second line."


def test_long_summary_is_cut_at_a_sentence():
    sentence = "This sentence is exactly fifty characters long ok. "
    body = sentence * 20

    summary = extract_summary(body)

    assert len(summary) <= 600
    assert summary.endswith("ok.")
    assert summary == (sentence * 11).strip()


def test_long_summary_without_sentences_is_cut_at_a_word():
    summary = extract_summary("word " * 200)

    assert len(summary) <= 601
    assert summary.endswith("word…")


def test_render_new_article_validates(tmp_path):
    text = render_new_article(
        id="returns-label-lost",
        title="I lost my return label: what now?",
        audience="b2c",
        owner="returns-team",
        today=datetime.date(2026, 11, 1),
    )
    path = tmp_path / "returns-label-lost.md"
    path.write_text(text, encoding="utf-8")

    article = parse_article(path)

    assert article.title == "I lost my return label: what now?"
    assert article.updated == datetime.date(2026, 11, 1)
    assert article.summary.startswith("Replace this paragraph")
    front = yaml.safe_load(text.split("---")[1])
    assert front["questions"] == []


@pytest.mark.parametrize(
    "kwargs",
    [{"id": "Not A Slug"}, {"audience": "everyone"}, {"title": "  "}],
)
def test_render_new_article_rejects_bad_values(kwargs):
    values = {"id": "a", "title": "T", "audience": "all", "owner": "o", **kwargs}

    with pytest.raises(ValueError):
        render_new_article(**values, today=datetime.date(2026, 1, 1))
