"""Score a knowledge base on labelled questions, through the decision the bot makes.

``kb eval QUESTIONS`` and ``python -m bench.demo_kb_quality`` both call :func:`evaluate`
(in-process: :func:`knowledge.answering.answer_question`, the code the action server
runs) or :func:`score` on outcomes they collected elsewhere (the benchmark's Rasa path).

A question file for ``kb eval`` is JSON Lines, one object a line::

    {"question": "where is my parcel", "expected": "orders-track-my-order"}
    {"question": "tell me a joke", "expected": null}
    {"question": "net 30?", "expected": "business-net30-invoicing", "audience": "b2b"}

``expected`` is the article the bot should answer with, or ``null`` when the bot should
not answer (an out-of-scope question). ``audience`` (optional) is ``b2b`` for a question
asked by a verified business contact, ``b2c`` (the default) for a customer who has not
identified themselves.

Figures (:class:`Figures`), over in-domain questions unless said otherwise:

* ``top1`` / ``top3``: the right article ranked first / among the first three hits the
  decision was made on (in-process only: through Rasa the ranking is not visible);
* ``shown_top1`` / ``shown_top3``: the right article is what the customer sees first
  (the answer, or the first suggestion) / among what the customer sees;
* ``answered_right`` / ``answered_wrong``: share answered with the right / a wrong article
  (a wrong article *answered*, not merely suggested, is the costly mistake);
* ``suggested``: share that got suggestions instead of an answer;
* ``ood_answered`` / ``ood_suggested``: out-of-domain questions answered / offered
  suggestions (counts);
* ``routed_elsewhere``: questions some other action answered (Rasa path only), by action.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowledge.answering import (
    BAND_ANSWER,
    BAND_SUGGEST,
    AnswerPolicy,
    Searchable,
    answer_question,
)

__all__ = [
    "EVAL_AUDIENCES",
    "EvalFileError",
    "EvalQuestion",
    "Figures",
    "Outcome",
    "evaluate",
    "load_jsonl",
    "outcome_of",
    "score",
]

EVAL_AUDIENCES = ("b2c", "b2b")
"""``b2c``: asked by a customer who has not identified themselves; ``b2b``: by a verified
business contact (the bot's ``customer_segment``)."""


class EvalFileError(ValueError):
    """A question file that cannot be evaluated; the message names the line."""


@dataclass(frozen=True)
class EvalQuestion:
    """One labelled question.

    Attributes:
        question: The text as a customer would type it.
        expected: The article that should answer it, or ``None`` (should not be answered).
        audience: ``b2c`` (not identified) or ``b2b`` (verified business contact).
        line: Line number in its file (1-based), for messages; 0 when not from a file.
    """

    question: str
    expected: str | None
    audience: str = "b2c"
    line: int = 0


@dataclass(frozen=True)
class Outcome:
    """What the bot did with one question.

    Attributes:
        question: The question asked.
        band: ``answer``, ``suggest``, ``unknown``, or ``elsewhere`` when another action
            than the knowledge answer handled it.
        answered: The article answered with (``answer`` band only).
        shown: The articles the customer sees, in order: the answer, or the suggestions.
        ranked: The hits the decision was made on, best first (empty when not visible).
        score: The best hit's score, when known.
        routed_to: The action that handled the question when not the knowledge answer.
    """

    question: EvalQuestion
    band: str
    answered: str | None = None
    shown: tuple[str, ...] = ()
    ranked: tuple[str, ...] = ()
    score: float | None = None
    routed_to: str | None = None

    @property
    def in_domain(self) -> bool:
        """Whether the question has an expected article."""
        return self.question.expected is not None

    @property
    def right_first(self) -> bool:
        """Whether the right article is what the customer sees first."""
        return self.in_domain and self.shown[:1] == (self.question.expected,)

    @property
    def answered_wrong(self) -> bool:
        """Whether an article was answered that is not the expected one (or none was due)."""
        return self.answered is not None and self.answered != self.question.expected


@dataclass(frozen=True)
class Figures:
    """The figures of one evaluation (see the module docstring)."""

    questions: int
    in_domain: int
    out_of_domain: int
    top1: float | None
    top3: float | None
    shown_top1: float
    shown_top3: float
    answered_right: float
    answered_wrong: float
    answered_wrong_count: int
    suggested: float
    ood_answered: int
    ood_suggested: int
    routed_elsewhere: dict[str, int] = field(default_factory=dict)
    misses: tuple[Outcome, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the figures as a JSON-ready dict (without the misses)."""
        return {
            "questions": self.questions,
            "in_domain": self.in_domain,
            "out_of_domain": self.out_of_domain,
            "top1": self.top1,
            "top3": self.top3,
            "shown_top1": self.shown_top1,
            "shown_top3": self.shown_top3,
            "answered_right": self.answered_right,
            "answered_wrong": self.answered_wrong,
            "answered_wrong_count": self.answered_wrong_count,
            "suggested": self.suggested,
            "ood_answered": self.ood_answered,
            "ood_suggested": self.ood_suggested,
            "routed_elsewhere": dict(self.routed_elsewhere),
        }


def load_jsonl(path: Path, *, known_ids: Iterable[str] | None = None) -> list[EvalQuestion]:
    """Read a ``kb eval`` question file (JSON Lines, see the module docstring).

    Blank lines are skipped.

    Args:
        path: The file.
        known_ids: The knowledge base's article ids; an ``expected`` outside them is an
            error (``None``: not checked).

    Returns:
        The questions, in file order.

    Raises:
        EvalFileError: The file is missing, unreadable, empty, or a line is malformed
            (the message names the line), or names an unknown article.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EvalFileError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise EvalFileError(f"{path}: not UTF-8 text") from None
    except OSError as error:
        raise EvalFileError(f"{path}: cannot be read ({error.strerror})") from None
    known = None if known_ids is None else set(known_ids)
    questions: list[EvalQuestion] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            questions.append(_parse_line(path, number, line, known))
    if not questions:
        raise EvalFileError(f"{path}: no questions (expected one JSON object per line)")
    return questions


def _parse_line(path: Path, number: int, line: str, known: set[str] | None) -> EvalQuestion:
    where = f"{path}:{number}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise EvalFileError(f"{where}: not valid JSON ({error.msg})") from None
    if not isinstance(record, dict):
        raise EvalFileError(
            f'{where}: expected an object like {{"question": ..., "expected": ...}}'
        )
    question = record.get("question")
    if not isinstance(question, str) or not question.strip():
        raise EvalFileError(f'{where}: "question" must be a non-empty string')
    if "expected" not in record:
        raise EvalFileError(f'{where}: "expected" is missing (an article id, or null)')
    expected = record["expected"]
    if expected is not None and (not isinstance(expected, str) or not expected.strip()):
        raise EvalFileError(f'{where}: "expected" must be an article id or null')
    if expected is not None and known is not None and expected not in known:
        raise EvalFileError(f"{where}: unknown article id {expected!r}")
    audience = record.get("audience", "b2c")
    if audience not in EVAL_AUDIENCES:
        choices = " or ".join(EVAL_AUDIENCES)
        raise EvalFileError(f'{where}: "audience" must be {choices}, got {audience!r}')
    unknown_keys = set(record) - {"question", "expected", "audience"}
    if unknown_keys:
        raise EvalFileError(f"{where}: unexpected field(s) {', '.join(sorted(unknown_keys))}")
    return EvalQuestion(question.strip(), expected, audience, number)


def outcome_of(source: Searchable, question: EvalQuestion, policy: AnswerPolicy) -> Outcome:
    """Decide one question as the bot does (:func:`knowledge.answering.answer_question`).

    Args:
        source: The knowledge base.
        question: The labelled question; its audience is the customer's segment.
        policy: The answer bands.

    Returns:
        The outcome.
    """
    segment = "b2b" if question.audience == "b2b" else None
    answer = answer_question(source, question.question, segment=segment, policy=policy)
    shown: tuple[str, ...]
    if answer.band == BAND_ANSWER and answer.article is not None:
        shown = (answer.article.article_id,)
    elif answer.band == BAND_SUGGEST:
        shown = tuple(hit.article_id for hit in answer.suggestions)
    else:
        shown = ()
    return Outcome(
        question=question,
        band=answer.band,
        answered=None if answer.article is None else answer.article.article_id,
        shown=shown,
        ranked=tuple(hit.article_id for hit in answer.hits),
        score=None if answer.top is None else float(answer.top.score),
    )


def evaluate(
    source: Searchable, questions: Sequence[EvalQuestion], policy: AnswerPolicy
) -> tuple[Figures, list[Outcome]]:
    """Run every question through the bot's decision and score the outcomes.

    Args:
        source: The knowledge base.
        questions: Labelled questions.
        policy: The answer bands.

    Returns:
        The figures and each question's outcome, in order.
    """
    outcomes = [outcome_of(source, question, policy) for question in questions]
    return score(outcomes, ranked=True), outcomes


def _share(count: int, total: int) -> float:
    return round(count / total, 4) if total else 0.0


def score(outcomes: Sequence[Outcome], *, ranked: bool = False) -> Figures:
    """Compute the figures of a set of outcomes.

    Args:
        outcomes: One per question.
        ranked: Whether the outcomes carry the ranking (``top1``/``top3`` are ``None``
            otherwise).

    Returns:
        The figures; ``misses`` holds every in-domain question whose right article was
        not shown first and every out-of-domain question that was answered.
    """
    inside = [o for o in outcomes if o.in_domain]
    outside = [o for o in outcomes if not o.in_domain]
    n = len(inside)
    top1 = top3 = None
    if ranked:
        top1 = _share(sum(o.ranked[:1] == (o.question.expected,) for o in inside), n)
        top3 = _share(sum(o.question.expected in o.ranked[:3] for o in inside), n)
    wrong = sum(o.answered_wrong for o in inside)
    elsewhere = Counter(o.routed_to for o in outcomes if o.routed_to is not None)
    misses = tuple(
        o
        for o in outcomes
        if (o.in_domain and not o.right_first) or (not o.in_domain and o.answered is not None)
    )
    right = sum(o.answered is not None and not o.answered_wrong for o in inside)
    return Figures(
        questions=len(outcomes),
        in_domain=n,
        out_of_domain=len(outside),
        top1=top1,
        top3=top3,
        shown_top1=_share(sum(o.right_first for o in inside), n),
        shown_top3=_share(sum(o.question.expected in o.shown[:3] for o in inside), n),
        answered_right=_share(right, n),
        answered_wrong=_share(wrong, n),
        answered_wrong_count=wrong,
        suggested=_share(sum(o.band == BAND_SUGGEST for o in inside), n),
        ood_answered=sum(o.answered is not None for o in outside),
        ood_suggested=sum(o.band == BAND_SUGGEST for o in outside),
        routed_elsewhere=dict(sorted(elsewhere.items())),
        misses=misses,
    )
