"""Content gaps for editors: failed questions grouped by meaning, with the nearest article.

:func:`build_gaps` collects the period's questions (:mod:`bot.content_gaps.collect`),
merges near-identical phrasings, embeds the rest with the live build's own query encoder
(the ONNX int8 one the bot searches with; loaded once per process and shared with the
desk's suggestions), groups them by meaning (:mod:`bot.content_gaps.grouping`) and, for
each group, searches the live index with its most central phrasing exactly as the bot
would (:func:`knowledge.answering.answer_question`: the customer's audience first) to name
the nearest existing article, its score and the band the bot would answer in.

Nothing is stored: every figure is derived from the conversations, messages, tickets and
audit events. Grouping a thousand questions takes several seconds, mostly embedding
(``python -m bench.content_gaps_page``), so :class:`ContentGapsService` keeps, per process:

* finished results (a few, for five minutes), keyed by the period and the exact questions;
  a new question is a new key, and a result computed with another knowledge build than
  the live one is not reused;
* the vectors of recently seen questions and the hits of recent nearest-article searches
  (bounded least-recently-used maps keyed by build), so that a new question costs its own
  embedding, not everyone's.

All of it is derived data that each replica computes for itself. One grouping runs at a
time per process; a second request waits for it and then finds the result in the cache.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote, urlencode

import numpy as np
from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from bot.content_gaps.collect import (
    DEFAULT_LIMIT,
    KIND_UNHELPFUL,
    Collected,
    GapQuestion,
    collect_questions,
)
from bot.content_gaps.grouping import (
    GROUP_THRESHOLD,
    Phrasing,
    QuestionEncoder,
    cluster_vectors,
    embed,
    medoid,
    merge_near_duplicates,
)
from bot.reports.queries import DEFAULT_DAYS, ReportPeriod
from knowledge.articles import OUT_OF_SCOPE_TAG

if TYPE_CHECKING:
    from knowledge.answering import AnswerPolicy, RankedSearchable
    from knowledge.articles import Article
    from knowledge.index import Hit

__all__ = [
    "CACHE_ENTRIES",
    "CACHE_SECONDS",
    "GAPS_DEFINITION",
    "MAX_EXAMPLES",
    "MAX_GROUPS",
    "MAX_LINK_QUESTIONS",
    "ContentGaps",
    "ContentGapsService",
    "GapArticle",
    "GapGroup",
    "Grouped",
    "add_questions_url",
    "build_gaps",
    "group_questions",
    "live_build_id",
    "live_query_encoder",
    "new_article_url",
]

logger = logging.getLogger(__name__)

MAX_EXAMPLES = 5
MAX_GROUPS = 100
"""Most groups still to fill that are listed (the largest); groups that an out-of-scope
article declines on purpose come along without counting, and at most twice this many
groups are searched for a nearest article."""
MAX_LINK_QUESTIONS = 5
MAX_LINK_CHARS = 200
MAX_TITLE_CHARS = 120
CACHE_SECONDS = 300.0
CACHE_ENTRIES = 8
VECTOR_CACHE_ENTRIES = 5000
"""Question vectors kept per process (384 floats each: about 7.7 MB at most)."""
SEARCH_CACHE_ENTRIES = 2000
NEW_ARTICLE_PATH = "/editor/articles/new"
OUT_OF_SCOPE_TITLE = "Questions we do not answer"  # a new out-of-scope article's title

GAPS_DEFINITION = (
    "Questions customers typed that the bot answered by saying it was not sure or could "
    "not find an answer (unanswered), and questions whose answer the customer said did not "
    "help (unhelpful), in the period. Button taps, commands, questions asked while an agent "
    "owned the conversation and unreadable text are left out. Near-identical wordings are "
    "merged, then questions are grouped by meaning with the bot's own query encoder. "
    "Customers: distinct identified contacts, plus one per conversation of a customer who "
    "was never identified. The nearest article is what the bot's search finds for the "
    "group's most typical wording today."
)

EncoderSource = Callable[[], tuple[str | None, QuestionEncoder]]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class GapArticle(_Model):
    """The live article nearest to a group, as the bot's search ranks it.

    Attributes:
        band: What the bot would do with the group's typical wording today: ``answer``,
            ``suggest`` or ``unknown``; ``declined`` when the article is an out-of-scope
            article that ranks first (the bot declines the group on purpose), whose
            ``url`` is then its edit form.
    """

    article_id: str
    title: str
    score: float
    band: str
    url: str


class GapGroup(_Model):
    """Questions of one meaning that the knowledge base failed."""

    id: str  # stable for the same typical wording: a page anchor
    title: str  # suggested article title: the most typical wording
    count: int  # questions
    conversations: int
    customers: int
    unanswered: int
    unhelpful: int
    unhelpful_share: float
    phrasings: int  # distinct wordings after merging near-identical ones
    examples: list[str]  # up to MAX_EXAMPLES wordings, most frequent first
    first_seen: dt.datetime
    last_seen: dt.datetime
    answered_with: list[str]  # articles whose answers were unhelpful, most often first
    nearest: GapArticle | None
    new_article_url: str
    add_to_article_url: str | None
    # Add the wordings to the knowledge base's out-of-scope article (questions the bot
    # declines on purpose). With none yet, ``decline`` is None and ``decline_url`` starts
    # one (a new article tagged out-of-scope with the wordings); None when unknown.
    decline: GapArticle | None = None
    decline_url: str | None = None

    @property
    def declined_on_purpose(self) -> bool:
        """Whether an out-of-scope article already declines the group (not a gap to fill)."""
        return self.nearest is not None and self.nearest.band == "declined"


class ContentGaps(_Model):
    """The content-gaps page's data."""

    period: ReportPeriod
    build_id: str | None
    questions_found: int
    questions_considered: int
    limit: int
    truncated: bool
    threshold: float
    grouped_by_meaning: bool  # False: the encoder was unavailable, only near-duplicates merged
    nearest_available: bool
    groups: list[GapGroup]  # the largest MAX_GROUPS to fill, and declined ones met on the way
    groups_total: int  # before the cut
    computed_at: dt.datetime
    definition: str = GAPS_DEFINITION


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def new_article_url(title: str, questions: Sequence[str], *, tags: Sequence[str] = ()) -> str:
    """The editor's "new article" link, prefilled with a title and alternate questions.

    Args:
        title: The suggested title.
        questions: Alternate questions (at most :data:`MAX_LINK_QUESTIONS` are used, each
            cut to :data:`MAX_LINK_CHARS`).
        tags: Tags to prefill.

    Returns:
        ``/editor/articles/new?title=...&question=...[&tag=...]``, URL-encoded.
    """
    pairs = [("title", _short(title, MAX_TITLE_CHARS))]
    pairs += [("question", _short(q, MAX_LINK_CHARS)) for q in questions[:MAX_LINK_QUESTIONS]]
    pairs += [("tag", tag) for tag in tags]
    return f"{NEW_ARTICLE_PATH}?{urlencode(pairs, quote_via=quote)}"


def add_questions_url(article_id: str, questions: Sequence[str]) -> str:
    """The editor's "edit article" link that adds alternate questions.

    Args:
        article_id: The article.
        questions: The questions to add (capped like :func:`new_article_url`).

    Returns:
        ``/editor/articles/<id>/edit?add_question=...``, URL-encoded.
    """
    pairs = [("add_question", _short(q, MAX_LINK_CHARS)) for q in questions[:MAX_LINK_QUESTIONS]]
    return f"{edit_article_url(article_id)}?{urlencode(pairs, quote_via=quote)}"


def edit_article_url(article_id: str) -> str:
    """The editor's edit form of an article (the id URL-encoded)."""
    return f"/editor/articles/{quote(article_id, safe='')}/edit"


def _suggested_title(text: str) -> str:
    title = _short(text.strip(), MAX_TITLE_CHARS)
    return title[:1].upper() + title[1:]


def _customers(questions: Sequence[GapQuestion]) -> int:
    contacts = {q.contact_id for q in questions if q.contact_id is not None}
    anonymous = {q.conversation_id for q in questions if q.contact_id is None}
    return len(contacts) + len(anonymous)


def _segment(questions: Sequence[GapQuestion]) -> str | None:
    """Search as a business contact only when most of the group's askers were one."""
    business = sum(1 for q in questions if q.segment == "b2b")
    return "b2b" if business * 2 > len(questions) else None


def _nearest(
    search: RankedSearchable, text: str, *, segment: str | None, policy: AnswerPolicy
) -> GapArticle | None:
    from knowledge.answering import answer_question, declined_by

    answer = answer_question(search, text, segment=segment, policy=policy)
    top = answer.top
    if top is None:
        declining = declined_by(search, answer)
        if declining is None:
            return None
        return GapArticle(
            article_id=declining.article_id,
            title=declining.title,
            score=round(float(declining.score), 3),
            band="declined",
            url=edit_article_url(declining.article_id),
        )
    return GapArticle(
        article_id=top.article_id,
        title=top.title,
        score=round(float(top.score), 3),
        band=answer.band,
        url=f"/articles/{quote(top.article_id, safe='')}",
    )


def _decline_target(articles: Sequence[Article]) -> GapArticle | None:
    """The out-of-scope article a group's wordings can be added to (the first by id)."""
    if not articles:
        return None
    first = min(articles, key=lambda article: article.id)
    return GapArticle(
        article_id=first.id,
        title=first.title,
        score=0.0,
        band="unknown",
        url=edit_article_url(first.id),
    )


class Grouped(NamedTuple):
    """What :func:`group_questions` found."""

    groups: list[GapGroup]  # the largest ``max_groups`` to fill, and declined ones met on the way
    total: int  # groups before the cut
    nearest_available: bool  # False: the index could not be searched


def group_questions(
    questions: Sequence[GapQuestion],
    *,
    encoder: QuestionEncoder | None,
    search: RankedSearchable | None,
    policy: AnswerPolicy,
    threshold: float = GROUP_THRESHOLD,
    max_groups: int = MAX_GROUPS,
    out_of_scope: Sequence[Article] | None = None,
) -> Grouped:
    """Group questions by meaning and describe each group.

    Args:
        questions: The questions (any order).
        encoder: The live build's query encoder; ``None``: only near-identical wordings
            are merged.
        search: The live index, for the nearest article; ``None``: no nearest article.
        policy: The bot's answer thresholds.
        threshold: Mean cosine from which phrasings are one group.
        max_groups: Most groups still to fill that are described (the largest first).
            Groups an out-of-scope article declines are described too without counting
            (the page folds them away), and at most ``2 * max_groups`` groups are searched,
            so declined groups cannot push the gaps to fill off the list.
        out_of_scope: The live index's out-of-scope articles: each group gets a link
            adding its wordings to the first (questions to decline on purpose), or, when
            there are none, one starting such an article; ``None`` (not known): no link.

    Returns:
        The groups (most questions first, then most recently asked), how many there were
        before the cut, and whether the nearest articles could be searched.
    """
    ordered = sorted(questions, key=lambda q: (q.asked_at, q.message_id))  # oldest first
    phrasings = merge_near_duplicates([q.text for q in ordered])
    if not phrasings:
        return Grouped([], 0, search is not None)
    if encoder is not None:
        vectors = embed(encoder, [p.text for p in phrasings])
        labels = cluster_vectors(vectors, threshold=threshold)
    else:
        vectors = np.eye(len(phrasings), dtype=np.float32)
        labels = list(range(len(phrasings)))
    members: dict[int, list[int]] = {}
    for number, label in enumerate(labels):
        members.setdefault(label, []).append(number)
    described: list[tuple[GapGroup, list[GapQuestion], str]] = []
    for numbers in members.values():
        group_phrasings: list[Phrasing] = [phrasings[n] for n in numbers]
        asked = [ordered[m] for p in group_phrasings for m in p.members]
        weights = [len(p.members) for p in group_phrasings]
        central = group_phrasings[medoid(vectors[numbers], weights)]
        by_count = sorted(group_phrasings, key=lambda p: (-len(p.members), -max(p.members)))
        examples = [p.text for p in by_count[:MAX_EXAMPLES]]
        unhelpful = sum(1 for q in asked if q.kind == KIND_UNHELPFUL)
        answered_with = Counter(q.article_id for q in asked if q.article_id)
        title = _suggested_title(central.text)
        group = GapGroup(
            id=hashlib.sha1(central.key.encode("utf-8")).hexdigest()[:12],
            title=title,
            count=len(asked),
            conversations=len({q.conversation_id for q in asked}),
            customers=_customers(asked),
            unanswered=len(asked) - unhelpful,
            unhelpful=unhelpful,
            unhelpful_share=round(unhelpful / len(asked), 3),
            phrasings=len(group_phrasings),
            examples=examples,
            first_seen=min(q.asked_at for q in asked),
            last_seen=max(q.asked_at for q in asked),
            answered_with=[article for article, _ in answered_with.most_common(3)],
            nearest=None,
            new_article_url=new_article_url(title, examples),
            add_to_article_url=None,
        )
        described.append((group, asked, central.text))
    described.sort(key=lambda item: (-item[0].count, -item[0].last_seen.timestamp(), item[0].title))
    nearest_ok = search is not None
    decline = _decline_target(out_of_scope or ())
    groups: list[GapGroup] = []
    to_fill = 0
    for searched, (group, asked, central_text) in enumerate(described):
        if to_fill >= max_groups or searched >= 2 * max_groups:
            break
        if decline is not None:
            url = add_questions_url(decline.article_id, group.examples)
            group = group.model_copy(update={"decline": decline, "decline_url": url})
        elif out_of_scope is not None:
            url = new_article_url(OUT_OF_SCOPE_TITLE, group.examples, tags=[OUT_OF_SCOPE_TAG])
            group = group.model_copy(update={"decline_url": url})
        if search is not None and nearest_ok:
            try:
                nearest = _nearest(search, central_text, segment=_segment(asked), policy=policy)
            except Exception as exc:  # the index may be missing or broken: no nearest article
                logger.warning("content gaps: nearest article unavailable: %s", exc)
                nearest_ok = False
            else:
                if nearest is not None:
                    url = add_questions_url(nearest.article_id, group.examples)
                    group = group.model_copy(update={"nearest": nearest, "add_to_article_url": url})
        groups.append(group)
        to_fill += not group.declined_on_purpose
    return Grouped(groups, len(described), nearest_ok)


def build_gaps(
    collected: Collected,
    *,
    period: ReportPeriod,
    encoder_source: EncoderSource | None,
    search: RankedSearchable | None,
    policy: AnswerPolicy,
    threshold: float = GROUP_THRESHOLD,
    max_groups: int = MAX_GROUPS,
    out_of_scope: Callable[[], Sequence[Article]] | None = None,
) -> ContentGaps:
    """Group collected questions (see :func:`group_questions`) into the page's data.

    A failing encoder is logged and the questions are grouped by near-identical wording
    only (``grouped_by_meaning`` is then False). ``out_of_scope`` returns the live index's
    out-of-scope articles; when it fails, the groups get no link to them.
    """
    encoder: QuestionEncoder | None = None
    build_id: str | None = None
    if encoder_source is not None and collected.questions:
        try:
            build_id, encoder = encoder_source()
        except Exception as exc:  # no build yet, or its encoder cannot load
            logger.warning("content gaps: query encoder unavailable: %s", exc)
    declining: Sequence[Article] | None = None
    if out_of_scope is not None and collected.questions:
        try:
            declining = out_of_scope()
        except Exception as exc:  # no build yet, or it cannot load: no decline link
            logger.warning("content gaps: out-of-scope articles unavailable: %s", exc)
    grouped = group_questions(
        collected.questions,
        encoder=encoder,
        search=search,
        policy=policy,
        threshold=threshold,
        max_groups=max_groups,
        out_of_scope=declining,
    )
    return ContentGaps(
        period=period,
        build_id=build_id,
        questions_found=collected.found,
        questions_considered=len(collected.questions),
        limit=collected.limit,
        truncated=collected.truncated,
        threshold=threshold,
        grouped_by_meaning=encoder is not None or not collected.questions,
        nearest_available=grouped.nearest_available,
        groups=grouped.groups,
        groups_total=grouped.total,
        computed_at=dt.datetime.now(dt.UTC),
    )


class _Lru:
    """A small least-recently-used map (callers hold the service's lock)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[tuple[object, ...], Any] = OrderedDict()

    def get(self, key: tuple[object, ...]) -> Any:
        value = self.items.get(key)
        if value is not None:
            self.items.move_to_end(key)
        return value

    def put(self, key: tuple[object, ...], value: Any) -> None:
        self.items[key] = value
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)


class _CachingEncoder:
    """Encodes only the texts it has not seen with this build's encoder."""

    def __init__(self, inner: QuestionEncoder, build_id: str | None, vectors: _Lru) -> None:
        self.inner, self.build_id, self.vectors = inner, build_id, vectors
        self.name, self.dimension = inner.name, inner.dimension

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        keys = [(self.build_id, self.inner.name, text) for text in texts]
        missing = [
            text for key, text in zip(keys, texts, strict=True) if self.vectors.get(key) is None
        ]
        if missing:
            for text, vector in zip(missing, self.inner.encode(missing), strict=True):
                self.vectors.put((self.build_id, self.inner.name, text), np.asarray(vector))
        rows = [self.vectors.get(key) for key in keys]
        if any(row is None for row in rows):  # evicted meanwhile (more texts than the cache)
            return self.inner.encode(list(texts))
        return np.vstack(rows).astype(np.float32) if rows else self.inner.encode([])


class _CachingSearch:
    """Remembers the live index's hits per build, query, limit and audience."""

    def __init__(self, inner: RankedSearchable, hits: _Lru) -> None:
        self.inner, self.hits = inner, hits

    def search(
        self, query: str, limit: int = 3, *, audience: str | None = None, raw: bool = False
    ) -> list[Hit]:
        key = (getattr(self.inner, "build_id", None), query, limit, audience, raw)
        cached = self.hits.get(key)
        if cached is None:
            cached = list(self.inner.search(query, limit, audience=audience, raw=raw))
            self.hits.put(key, cached)
        return list(cached)


def live_query_encoder(index_dir: Path) -> tuple[str, QuestionEncoder]:
    """The live build's name and its query encoder (the one the bot searches with).

    The ONNX encoder is process-wide per export (:func:`knowledge.onnx_encoder.
    load_onnx_encoder`), so this shares the session the desk's suggestions load.

    Args:
        index_dir: The index root.

    Returns:
        The build id and its query encoder.

    Raises:
        IndexNotBuiltError: No build is published.
        KnowledgeIndexError: The build's manifest or encoder is unreadable.
    """
    from knowledge.index import IndexNotBuiltError, query_encoder_for, read_manifest
    from knowledge.store import current_build

    build = current_build(index_dir)
    if build is None:
        raise IndexNotBuiltError(f"no knowledge index has been built in {index_dir}")
    return build.name, query_encoder_for(build, read_manifest(build))


class ContentGapsService:
    """Computes :class:`ContentGaps` and keeps recent results briefly (one per process).

    Args:
        encoder_source: Returns the live build id and its query encoder.
        search: The live index (nearest articles).
        policy: The bot's answer thresholds.
        limit: Most questions considered per period.
        threshold: Grouping threshold.
        max_groups: Most groups still to fill described (see :func:`group_questions`).
        cache_seconds: How long a result is reused.
        cache_entries: Most results kept.
        clock: Monotonic seconds (tests pass a fake).
        build_probe: Returns the live build's id cheaply; a cached result computed with
            another build is not reused (``None``: results are reused until they expire).
        out_of_scope: Returns the live index's out-of-scope articles (``None``: not known,
            so groups get no decline link).
    """

    def __init__(
        self,
        *,
        encoder_source: EncoderSource | None,
        search: RankedSearchable | None,
        policy: AnswerPolicy,
        limit: int = DEFAULT_LIMIT,
        threshold: float = GROUP_THRESHOLD,
        max_groups: int = MAX_GROUPS,
        cache_seconds: float = CACHE_SECONDS,
        cache_entries: int = CACHE_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
        build_probe: Callable[[], str | None] | None = None,
        out_of_scope: Callable[[], Sequence[Article]] | None = None,
    ) -> None:
        self.encoder_source = encoder_source
        self.search = search
        self.policy = policy
        self.limit = limit
        self.threshold = threshold
        self.max_groups = max_groups
        self._cache_seconds = cache_seconds
        self._cache_entries = cache_entries
        self._clock = clock
        self._build_probe = build_probe
        self._out_of_scope = out_of_scope
        self._vectors = _Lru(VECTOR_CACHE_ENTRIES)
        self._hits = _Lru(SEARCH_CACHE_ENTRIES)
        self._cache: OrderedDict[str, tuple[float, ContentGaps]] = OrderedDict()
        self._lock = threading.Lock()  # one grouping at a time in this process
        self.computations = 0

    def gaps(
        self, session: Session, *, days: int = DEFAULT_DAYS, now: dt.datetime | None = None
    ) -> ContentGaps:
        """The period's content gaps (blocking: call it in a worker thread).

        Args:
            session: An open session.
            days: The last this many calendar days (UTC), today included; 1 to 365.
            now: The current time (tests pass a fixed one).

        Returns:
            The groups, fresh or from the cache.

        Raises:
            ValueError: ``days`` is out of range.
        """
        period = ReportPeriod.last(days, now=now)
        collected = collect_questions(session, period=period, limit=self.limit)
        key = self._key(period, collected)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached[0] > self._clock() and self._same_build(cached[1]):
                self._cache.move_to_end(key)
                return cached[1]
            self.computations += 1
            started = time.perf_counter()
            result = build_gaps(
                collected,
                period=period,
                encoder_source=self._caching_source if self.encoder_source else None,
                search=_CachingSearch(self.search, self._hits) if self.search else None,
                policy=self.policy,
                threshold=self.threshold,
                max_groups=self.max_groups,
                out_of_scope=self._out_of_scope,
            )
            logger.info(
                "content gaps: %d questions in %d groups (days=%d build=%s) in %.2fs",
                result.questions_considered,
                len(result.groups),
                days,
                result.build_id,
                time.perf_counter() - started,
            )
            self._cache[key] = (self._clock() + self._cache_seconds, result)
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_entries:
                self._cache.popitem(last=False)
            return result

    def _caching_source(self) -> tuple[str | None, QuestionEncoder]:
        assert self.encoder_source is not None
        build_id, encoder = self.encoder_source()
        return build_id, _CachingEncoder(encoder, build_id, self._vectors)

    def _same_build(self, result: ContentGaps) -> bool:
        if self._build_probe is None or not result.questions_considered:
            return True
        try:
            return self._build_probe() == result.build_id
        except Exception:  # cannot tell: recompute
            return False

    def _key(self, period: ReportPeriod, collected: Collected) -> str:
        digest = hashlib.sha256()
        digest.update(f"{period.start.isoformat()}|{self.threshold}|".encode())
        for question in collected.questions:
            digest.update(f"{question.message_id}:{question.kind};".encode())
        digest.update(f"|{collected.found}".encode())
        return digest.hexdigest()


def live_build_id(index_dir: Path) -> str | None:
    """The live build's folder name (reads one symlink), or ``None`` if none is published."""
    from knowledge.store import current_build

    build = current_build(index_dir)
    return None if build is None else build.name
