"""What the bot does with a question: the answer bands and the audience rules, in one place.

The action server (``actions/knowledge.py``), ``kb search`` and the benchmarks all call
:func:`answer_question`, so an editor's ``kb search`` shows exactly what the bot would do.

Bands, by the score of the hit the bot would answer with (``AnswerPolicy``):

* **answer** (score >= ``answer_threshold``): reply with that article;
* **suggest** (score >= ``suggest_threshold``): offer every hit at or above the suggest
  threshold as a choice;
* **unknown** (anything lower, or no hit): say so plainly and offer a person.

Audiences: articles are for ``b2c``, ``b2b`` or ``all`` customers. The search first covers
the customer's own audience (``b2b`` + ``all`` for verified business contacts, ``b2c`` +
``all`` for everyone else, including customers not identified yet). Only if that finds no
answer-band hit are all articles searched, and that result is used when *it* has an
answer-band hit: a consumer asking how to join the business programme still gets the
business article, but business-only articles never crowd a consumer's suggestions (and
vice versa). So a customer may *pick* (from suggestions) only an article of their own
audience or ``all`` (:func:`chosen_article`); a button naming another is refused as forged
or stale. Business contacts also *prefer* business articles: a ``b2b`` hit within
``b2b_preference_margin`` (0.05) of a better general hit, and in the same band, is moved
to the top (e.g. "can we pay by invoice?" gets the Net-30 article rather than the
consumer invoice one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from knowledge.articles import Article
from knowledge.index import Hit

__all__ = [
    "B2B_PREFERENCE_MARGIN",
    "BAND_ANSWER",
    "BAND_SUGGEST",
    "BAND_UNKNOWN",
    "DEFAULT_ANSWER_MARGIN",
    "DEFAULT_ANSWER_THRESHOLD",
    "DEFAULT_LIMIT",
    "DEFAULT_SUGGEST_THRESHOLD",
    "SEGMENTS",
    "Answer",
    "AnswerBand",
    "AnswerPolicy",
    "Choosable",
    "RankedSearchable",
    "Searchable",
    "answer_question",
    "band_for",
    "band_of",
    "chosen_article",
    "declined_by",
    "search_for_customer",
]

# Chosen on CLINC150 val by bench/clinc150_threshold.py (docs/benchmarks.md); deployments
# pass their own values (the bot's settings) through AnswerPolicy.
DEFAULT_ANSWER_THRESHOLD = 0.52
DEFAULT_SUGGEST_THRESHOLD = 0.45
DEFAULT_LIMIT = 3
B2B_PREFERENCE_MARGIN = 0.05
DEFAULT_ANSWER_MARGIN = 0.0

AnswerBand = Literal["answer", "suggest", "unknown"]
BAND_ANSWER: AnswerBand = "answer"
BAND_SUGGEST: AnswerBand = "suggest"
BAND_UNKNOWN: AnswerBand = "unknown"
SEGMENTS = ("b2c", "b2b")


class Searchable(Protocol):
    """Anything searchable like the knowledge index (``KnowledgeIndex``, ``LiveKnowledgeBase``)."""

    def search(self, query: str, limit: int = 3, *, audience: str | None = None) -> list[Hit]:
        """Return up to ``limit`` hits, best first, optionally only for one audience."""
        ...


class RankedSearchable(Searchable, Protocol):
    """Searchable whose raw ranking, out-of-scope articles included, can be asked for."""

    def search(
        self, query: str, limit: int = 3, *, audience: str | None = None, raw: bool = False
    ) -> list[Hit]:
        """As :meth:`Searchable.search`; ``raw``: see ``KnowledgeIndex.search``."""
        ...


class Choosable(Protocol):
    """Where a picked article is looked up (``KnowledgeIndex``, ``LiveKnowledgeBase``)."""

    def article(self, article_id: str) -> Article | None:
        """Return an article by id, or ``None``."""
        ...

    def best_hit_in(self, article_id: str, query: str) -> Hit | None:
        """Return the hit one article gives for a question, or ``None``."""
        ...


@dataclass(frozen=True)
class AnswerPolicy:
    """The thresholds and limits that decide a question's band.

    Attributes:
        answer_threshold: Score from which the best hit is answered directly.
        suggest_threshold: Score from which hits are offered as suggestions.
        limit: Most hits searched for and offered.
        b2b_preference_margin: How far behind a better general hit a business article may
            be and still be preferred for a business contact.
        answer_margin: How far the best hit's score must lead the next article's for the
            bot to answer; a closer race is offered as suggestions (0: no margin).

    Raises:
        ValueError: If a threshold is outside 0..1, the suggest threshold is above the
            answer threshold, or the limit is below 1.
    """

    answer_threshold: float = DEFAULT_ANSWER_THRESHOLD
    suggest_threshold: float = DEFAULT_SUGGEST_THRESHOLD
    limit: int = DEFAULT_LIMIT
    b2b_preference_margin: float = B2B_PREFERENCE_MARGIN
    answer_margin: float = DEFAULT_ANSWER_MARGIN

    def __post_init__(self) -> None:
        for name in ("answer_threshold", "suggest_threshold"):
            value = getattr(self, name)
            if not (0.0 <= value <= 1.0) or math.isnan(value):
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.suggest_threshold > self.answer_threshold:
            raise ValueError("suggest_threshold must not be above answer_threshold")
        if self.limit < 1:
            raise ValueError(f"limit must be at least 1, got {self.limit}")
        if self.b2b_preference_margin < 0:
            raise ValueError("b2b_preference_margin must not be negative")
        if not (0.0 <= self.answer_margin <= 1.0) or math.isnan(self.answer_margin):
            raise ValueError(f"answer_margin must be between 0 and 1, got {self.answer_margin}")


def band_for(score: float | None, policy: AnswerPolicy) -> AnswerBand:
    """Return the band a hit's score falls in (``unknown`` when there is no hit).

    Args:
        score: The hit's score, or ``None`` when nothing was found.
        policy: The thresholds.

    Returns:
        ``answer``, ``suggest`` or ``unknown``.
    """
    if score is None:
        return BAND_UNKNOWN
    if score >= policy.answer_threshold:
        return BAND_ANSWER
    if score >= policy.suggest_threshold:
        return BAND_SUGGEST
    return BAND_UNKNOWN


def band_of(
    hits: list[Hit] | tuple[Hit, ...], policy: AnswerPolicy, *, preferred: bool = False
) -> AnswerBand:
    """Return the band of a ranked list of hits.

    That is the first hit's band, except that an answer whose lead over the next article
    is below ``policy.answer_margin`` is only suggested.

    Args:
        hits: Hits, the one to answer with first.
        policy: The thresholds and the margin.
        preferred: The first hit was put first by the business preference, which settles
            a close race on purpose: no margin is asked for.

    Returns:
        ``answer``, ``suggest`` or ``unknown``.
    """
    band = band_for(hits[0].score if hits else None, policy)
    close = len(hits) > 1 and hits[0].score - hits[1].score < policy.answer_margin
    if band == BAND_ANSWER and policy.answer_margin > 0 and close and not preferred:
        return BAND_SUGGEST
    return band


@dataclass(frozen=True)
class Answer:
    """What the bot does with one question.

    Attributes:
        query: The question as searched.
        segment: The customer's segment (``b2b``, ``b2c`` or ``None`` when unidentified).
        band: ``answer``, ``suggest`` or ``unknown``.
        hits: The ranked hits the decision was made on, the one to answer with first.
        policy: The thresholds used.
        searched: The audiences searched, in order (``None`` means every article).
    """

    query: str
    segment: str | None
    band: AnswerBand
    hits: tuple[Hit, ...]
    policy: AnswerPolicy
    searched: tuple[str | None, ...] = field(default=())

    @property
    def top(self) -> Hit | None:
        """The first hit (answered only in the ``answer`` band), or ``None``."""
        return self.hits[0] if self.hits else None

    @property
    def article(self) -> Hit | None:
        """The hit the bot answers with, or ``None`` outside the ``answer`` band."""
        return self.hits[0] if self.band == BAND_ANSWER else None

    @property
    def suggestions(self) -> list[Hit]:
        """The hits offered as choices (only in the ``suggest`` band)."""
        if self.band != BAND_SUGGEST:
            return []
        return [hit for hit in self.hits if hit.score >= self.policy.suggest_threshold]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready description (``kb search --json`` prints it)."""
        return {
            "query": self.query,
            "segment": self.segment,
            "band": self.band,
            "answer_threshold": self.policy.answer_threshold,
            "suggest_threshold": self.policy.suggest_threshold,
            "searched_audiences": list(self.searched),
            "answer": None if self.article is None else self.article.article_id,
            "suggestions": [hit.article_id for hit in self.suggestions],
            "hits": [_hit_dict(rank, hit) for rank, hit in enumerate(self.hits, start=1)],
        }


def _hit_dict(rank: int, hit: Hit) -> dict[str, Any]:
    return {
        "rank": rank,
        "article_id": hit.article_id,
        "title": hit.title,
        "score": round(float(hit.score), 4),
        "audience": hit.audience,
        "matched_text": hit.matched_text,
    }


def _prefer_business(hits: list[Hit], policy: AnswerPolicy) -> list[Hit]:
    if not hits or hits[0].audience == "b2b":
        return hits
    best = hits[0]
    band = band_for(best.score, policy)
    for hit in hits[1:]:
        close = best.score - hit.score <= policy.b2b_preference_margin
        if hit.audience == "b2b" and close and band_for(hit.score, policy) == band:
            return [hit, *(other for other in hits if other is not hit)]
    return hits


def search_for_customer(
    source: Searchable, query: str, *, segment: str | None, policy: AnswerPolicy
) -> tuple[list[Hit], tuple[str | None, ...]]:
    """Search the customer's audience first, then every article (see the module docstring).

    Args:
        source: Where to search.
        query: The customer's question.
        segment: ``b2b`` for a verified business contact; anything else (``b2c``,
            ``None`` for a customer not identified yet) searches as a consumer.
        policy: The thresholds and the number of hits.

    Returns:
        Up to ``policy.limit`` hits, the one to answer with (if any) first, and the
        audiences searched (``None`` meaning every article).
    """
    hits, searched, _ = _decide(source, query, segment=segment, policy=policy)
    return hits, searched


def _decide(
    source: Searchable, query: str, *, segment: str | None, policy: AnswerPolicy
) -> tuple[list[Hit], tuple[str | None, ...], AnswerBand]:
    business = segment == "b2b"
    own = _own_audience(segment)
    hits = source.search(query, policy.limit, audience=own)
    preferred = False
    if business:
        ranked = hits
        hits = _prefer_business(hits, policy)
        preferred = hits[:1] != ranked[:1]
    band = band_of(hits, policy, preferred=preferred)
    if band == BAND_ANSWER:
        return hits, (own,), band
    everything = source.search(query, policy.limit, audience=None)
    if band_of(everything, policy) == BAND_ANSWER:
        return everything, (own, None), BAND_ANSWER
    return hits, (own, None), band


def answer_question(
    source: Searchable, query: str, *, segment: str | None = None, policy: AnswerPolicy
) -> Answer:
    """Decide what the bot does with a question: answer, suggest, or say it does not know.

    Args:
        source: Where to search.
        query: The customer's question (surrounding blanks are ignored).
        segment: ``b2b`` for a verified business contact; anything else searches as a
            consumer (see :func:`search_for_customer`).
        policy: The thresholds and the number of hits.

    Returns:
        The band and the hits it was decided on.
    """
    text = query.strip()
    if not text:
        return Answer(text, segment, BAND_UNKNOWN, (), policy, ())
    hits, searched, band = _decide(source, text, segment=segment, policy=policy)
    return Answer(text, segment, band, tuple(hits), policy, searched)


def declined_by(source: RankedSearchable, answer: Answer) -> Hit | None:
    """The out-of-scope article that made a search find nothing, if one did.

    Args:
        source: Where the answer was searched.
        answer: What :func:`answer_question` decided.

    Returns:
        The out-of-scope article's hit when it ranked first over the audiences last
        searched (the question was declined on purpose); ``None`` when the answer has
        hits or nothing ranked at all.
    """
    if answer.hits or not answer.query:
        return None
    audience = answer.searched[-1] if answer.searched else None
    ranked = source.search(answer.query, 1, audience=audience, raw=True)
    return ranked[0] if ranked and ranked[0].out_of_scope else None


def _own_audience(segment: str | None) -> str:
    return "b2b" if segment == "b2b" else "b2c"


def chosen_article(
    source: Choosable, article_id: str, *, query: str | None, segment: str | None
) -> tuple[Article, Hit | None] | None:
    """The article a customer picked from suggestions, and what of it to answer with.

    Suggestions only ever come from the customer's own audience (see the module
    docstring), so an article of another audience was never offered: the pick is refused.

    Args:
        source: Where to look the article up.
        article_id: The picked article.
        query: The question the suggestions answered, if known: a long article then
            answers with the passage that matched it (and cites its section).
        segment: ``b2b`` for a verified business contact; anything else is a consumer.

    Returns:
        The article and its hit for the question (``None`` without a question), or
        ``None`` for an unknown article or one this customer could not have been offered
        (another audience's, or an out-of-scope article).
    """
    article = source.article(article_id)
    if article is None or article.audience not in (_own_audience(segment), "all"):
        return None
    if article.out_of_scope:  # lists questions to decline: never offered
        return None
    hit = source.best_hit_in(article_id, query) if query and query.strip() else None
    return article, hit
