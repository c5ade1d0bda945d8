"""``kb eval``: question-file parsing, scoring through the bot's decision, the CLI verb."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from knowledge import editor
from knowledge.answering import AnswerPolicy, answer_question
from knowledge.articles import load_articles
from knowledge.evaluation import (
    EvalFileError,
    EvalQuestion,
    Outcome,
    evaluate,
    load_jsonl,
    score,
)
from knowledge.index import KnowledgeIndex

IDS = {"returns-start-a-return", "account-reset-password", "business-volume-pricing"}


def write_lines(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- parsing ------------------------------------------------------------------------------


def test_load_jsonl_reads_questions_expected_and_audience(tmp_path):
    path = write_lines(
        tmp_path / "q.jsonl",
        '{"question": " I forgot my password ", "expected": "account-reset-password"}',
        "",
        '{"question": "tell me a joke", "expected": null}',
        '{"question": "bulk chairs", "expected": "business-volume-pricing", "audience": "b2b"}',
    )

    questions = load_jsonl(path, known_ids=IDS)

    assert questions == [
        EvalQuestion("I forgot my password", "account-reset-password", "b2c", 1),
        EvalQuestion("tell me a joke", None, "b2c", 3),
        EvalQuestion("bulk chairs", "business-volume-pricing", "b2b", 4),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"question": "x", "expected": "nope"}', "line 2|:2: unknown article id 'nope'"),
        ("not json", ":2: not valid JSON"),
        ('["a list"]', ":2: expected an object"),
        ('{"expected": null}', ':2: "question" must be a non-empty string'),
        ('{"question": "  ", "expected": null}', ':2: "question" must be a non-empty string'),
        ('{"question": "x"}', ':2: "expected" is missing'),
        ('{"question": "x", "expected": 7}', ':2: "expected" must be an article id or null'),
        ('{"question": "x", "expected": null, "audience": "vip"}', ':2: "audience" must be'),
        ('{"question": "x", "expected": null, "answer": "y"}', ":2: unexpected field(s) answer"),
    ],
)
def test_load_jsonl_names_the_bad_line(tmp_path, line, message):
    path = write_lines(tmp_path / "q.jsonl", '{"question": "ok", "expected": null}', line)

    with pytest.raises(EvalFileError) as raised:
        load_jsonl(path, known_ids=IDS)

    text = str(raised.value)
    assert any(part in text for part in message.split("|"))
    assert str(path) in text


def test_load_jsonl_refuses_empty_missing_and_binary_files(tmp_path):
    empty = write_lines(tmp_path / "empty.jsonl", "", "   ")
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00bad")

    with pytest.raises(EvalFileError, match="no questions"):
        load_jsonl(empty)
    with pytest.raises(EvalFileError, match="no such file"):
        load_jsonl(tmp_path / "missing.jsonl")
    with pytest.raises(EvalFileError, match="not UTF-8"):
        load_jsonl(binary)


def test_unknown_ids_are_only_checked_when_the_ids_are_given(tmp_path):
    path = write_lines(tmp_path / "q.jsonl", '{"question": "x", "expected": "anything"}')

    assert load_jsonl(path)[0].expected == "anything"


# --- scoring ------------------------------------------------------------------------------


def outcome(expected, band, *, answered=None, shown=(), ranked=(), routed_to=None):
    question = EvalQuestion(f"q {expected} {band}", expected)
    return Outcome(question, band, answered, tuple(shown), tuple(ranked), None, routed_to)


def test_score_counts_every_figure():
    outcomes = [
        # right answer, ranked first
        outcome("a", "answer", answered="a", shown=["a"], ranked=["a", "b", "c"]),
        # wrong article answered; the right one second in the ranking
        outcome("a", "answer", answered="b", shown=["b"], ranked=["b", "a", "c"]),
        # suggested, right one first among the suggestions
        outcome("c", "suggest", shown=["c", "a"], ranked=["c", "a", "b"]),
        # "I don't know" to an in-domain question: nothing shown, ranked third
        outcome("c", "unknown", ranked=["a", "b", "c"]),
        # out of domain: one answered, one suggested, one unknown
        outcome(None, "answer", answered="a", shown=["a"], ranked=["a"]),
        outcome(None, "suggest", shown=["b"], ranked=["b"]),
        outcome(None, "unknown"),
    ]

    figures = score(outcomes, ranked=True)

    assert (figures.in_domain, figures.out_of_domain, figures.questions) == (4, 3, 7)
    assert figures.top1 == 0.5
    assert figures.top3 == 1.0
    assert figures.shown_top1 == 0.5
    assert figures.shown_top3 == 0.5
    assert figures.answered_right == 0.25
    assert figures.answered_wrong == 0.25
    assert figures.answered_wrong_count == 1
    assert figures.suggested == 0.25
    assert figures.ood_answered == 1
    assert figures.ood_suggested == 1
    assert [m.question.question for m in figures.misses] == [
        "q a answer",
        "q c unknown",
        "q None answer",
    ]


def test_score_without_ranking_counts_routing_elsewhere():
    outcomes = [
        outcome("a", "elsewhere", routed_to="action_handoff_to_human"),
        outcome("a", "elsewhere", routed_to="action_handoff_to_human"),
        outcome(None, "elsewhere", routed_to="action_identify_customer"),
        outcome("a", "answer", answered="a", shown=["a"]),
    ]

    figures = score(outcomes)

    assert figures.top1 is None and figures.top3 is None
    assert figures.shown_top1 == round(1 / 3, 4)
    assert figures.routed_elsewhere == {"action_handoff_to_human": 2, "action_identify_customer": 1}
    assert figures.ood_answered == 0


def test_evaluate_runs_the_bots_decision(articles_dir, encoder):
    index = KnowledgeIndex.build(load_articles(articles_dir), encoder)
    policy = AnswerPolicy(answer_threshold=0.5, suggest_threshold=0.2)
    questions = [
        EvalQuestion("I forgot my password", "account-reset-password"),
        EvalQuestion("bulk pricing for office chairs", "business-volume-pricing", "b2b"),
        EvalQuestion("quantum chromodynamics lecture", None),
    ]

    figures, outcomes = evaluate(index, questions, policy)

    for question, result in zip(questions, outcomes, strict=True):
        segment = "b2b" if question.audience == "b2b" else None
        answer = answer_question(index, question.question, segment=segment, policy=policy)
        assert result.band == answer.band
        assert result.ranked == tuple(hit.article_id for hit in answer.hits)
    assert outcomes[0].answered == "account-reset-password"
    assert figures.in_domain == 2


# --- the CLI verb ---------------------------------------------------------------------------


@pytest.fixture
def run(tmp_path, encoder, capsys, monkeypatch):
    """Run the editor with folders under tmp_path; return (exit code, stdout, stderr)."""
    monkeypatch.setenv("COLUMNS", "200")

    def run(*argv: str):
        dirs = [
            "--articles-dir",
            str(tmp_path / "articles"),
            "--index-dir",
            str(tmp_path / "index"),
        ]
        code = editor.main([*argv, *dirs], encoder=encoder)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_eval_prints_figures_misses_and_one_json_line(run, articles_dir, tmp_path):
    run("build")
    questions = write_lines(
        tmp_path / "q.jsonl",
        '{"question": "I forgot my password", "expected": "account-reset-password"}',
        '{"question": "Track my delivery", "expected": "returns-start-a-return"}',
        '{"question": "zebra saxophone nebula", "expected": null}',
    )

    code, out, err = run("eval", str(questions), "--answer-threshold", "0.5")

    assert code == 0, err
    last = json.loads(out.strip().splitlines()[-1])
    assert last["kb_eval"] == str(questions)
    assert last["in_domain"] == 2 and last["out_of_domain"] == 1
    assert last["top1"] == 0.5
    assert last["answered_wrong_count"] == 1
    assert "1 misses" in out
    assert "Track my delivery" in out
    assert "answered wrong 0.500 (1)" in out


def test_eval_reports_a_malformed_line(run, articles_dir, tmp_path):
    run("build")
    questions = write_lines(tmp_path / "q.jsonl", '{"question": "x", "expected": "no-such"}')

    code, out, err = run("eval", str(questions))

    assert code == 1
    assert ":1: unknown article id 'no-such'" in err
    assert out == ""


def test_eval_without_an_index_says_so(run, articles_dir, tmp_path):
    questions = write_lines(tmp_path / "q.jsonl", '{"question": "x", "expected": null}')

    code, _, err = run("eval", str(questions))

    assert code == 1
    assert "error" in err


# --- the answer margin the evaluation tunes -------------------------------------------------


def margin_hit(article_id: str, score: float, audience: str = "all"):
    from knowledge.index import Hit

    return Hit(article_id, f"Title {article_id}", score, f"Summary {article_id}", audience, "m")


class Scripted:
    """Returns the given hits filtered by audience, best first."""

    def __init__(self, hits):
        self.hits = hits

    def search(self, query, limit=3, *, audience=None):
        allowed = [h for h in self.hits if audience is None or h.audience in (audience, "all")]
        return sorted(allowed, key=lambda h: -h.score)[:limit]


@pytest.mark.parametrize(
    ("second", "margin", "band"),
    [(0.70, 0.05, "answer"), (0.78, 0.05, "suggest"), (0.78, 0.0, "answer")],
)
def test_a_close_race_is_suggested_not_answered(second, margin, band):
    source = Scripted([margin_hit("a", 0.80), margin_hit("b", second)])
    policy = AnswerPolicy(answer_threshold=0.6, suggest_threshold=0.4, answer_margin=margin)

    answer = answer_question(source, "q", policy=policy)

    assert answer.band == band
    assert answer.article is (answer.hits[0] if band == "answer" else None)


def test_a_lone_hit_needs_no_margin():
    source = Scripted([margin_hit("a", 0.80)])
    policy = AnswerPolicy(answer_threshold=0.6, suggest_threshold=0.4, answer_margin=0.3)

    assert answer_question(source, "q", policy=policy).band == "answer"


def test_margin_must_be_between_0_and_1():
    with pytest.raises(ValueError, match="answer_margin"):
        AnswerPolicy(answer_margin=-0.1)


def test_the_business_preference_settles_a_close_race_without_the_margin():
    source = Scripted(
        [margin_hit("invoices-get-an-invoice", 0.797), margin_hit("net30", 0.783, "b2b")]
    )
    policy = AnswerPolicy(answer_threshold=0.7, suggest_threshold=0.4, answer_margin=0.03)

    business = answer_question(source, "can we pay by invoice?", segment="b2b", policy=policy)
    consumer = answer_question(source, "can we pay by invoice?", segment=None, policy=policy)

    assert (business.band, business.article.article_id) == ("answer", "net30")
    # a consumer's search has no business article: nothing to race against
    assert (consumer.band, consumer.article.article_id) == ("answer", "invoices-get-an-invoice")
