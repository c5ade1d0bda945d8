"""How the bot would answer test questions with a draft in place, before publishing.

:func:`draft_index` is the live build as publishing the draft would make it
(:meth:`knowledge.index.KnowledgeIndex.with_article`): the other articles' vectors kept,
the draft's texts encoded, the classifier head trained again (in a large knowledge base
only the draft's row, as a publish of one article does) and BM25 re-scored when the build
ranks with them. :func:`knowledge.answering.answer_question` then makes the same
decision the bot and ``kb search`` make: answer, suggest, or "I don't know".

One approximation, said plainly: the draft's new texts are embedded with the build's ONNX
int8 query encoder rather than the torch model a publish encodes with (probe cosine above
0.99, see :mod:`knowledge.onnx_encoder`); and a preview always fits only the draft's
head row in a large knowledge base, where a publish trains every row once a tenth of the
articles were fitted alone. The live build is loaded once per build and shared; a draft is
ranked once per content (``preview_*_s`` of ``python -m bench.editor_publish``) and kept
while only the test questions change.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from knowledge.articles import Article

if TYPE_CHECKING:
    from knowledge.answering import Answer, AnswerPolicy
    from knowledge.encoder import Encoder
    from knowledge.index import KnowledgeIndex

logger = logging.getLogger(__name__)

MAX_TEST_QUESTIONS = 10
MAX_TEST_QUESTION_CHARS = 300
# Draft indexes kept per process: each holds a copy of the live build's vectors.
KEPT_DRAFT_INDEXES = 2


def draft_index(live: KnowledgeIndex | None, encoder: Encoder, draft: Article) -> KnowledgeIndex:
    """The index the bot would search once ``draft`` is published.

    Args:
        live: The live build (``None``: nothing published yet, so the draft alone).
        encoder: Encodes the draft's texts the live build does not already hold.
        draft: The validated draft, new or replacing the article with its id.
    """
    from knowledge.index import AnnConfig, KnowledgeIndex

    if live is None:
        return KnowledgeIndex.build([draft], encoder, ann=AnnConfig(kind="flat"))
    return live.with_article(draft, encoder)


@dataclass(frozen=True)
class PreviewAnswer:
    """One test question and what the bot would do with it."""

    question: str
    band: str
    article_id: str | None
    title: str | None
    score: float | None
    is_draft: bool
    suggestions: list[tuple[str, str]]


class PreviewIndex:
    """The live build for previews, reloaded when ``current`` points elsewhere.

    Args:
        index_dir: The index root.
        encoder: Query encoder to load builds with (``None``: each build's ONNX encoder).
    """

    def __init__(self, index_dir: Path, encoder: Encoder | None = None) -> None:
        self._root = Path(index_dir)
        self._encoder = encoder
        self._lock = threading.Lock()
        self._build: Path | None = None
        self._index: KnowledgeIndex | None = None
        self._drafts: OrderedDict[tuple[Path | None, str], KnowledgeIndex] = OrderedDict()

    def current(self) -> KnowledgeIndex | None:
        """The live build, or ``None`` when nothing is published yet."""
        from knowledge.store import current_build

        build = current_build(self._root)
        if build is None:
            return None
        with self._lock:
            if build != self._build or self._index is None:
                from knowledge.index import KnowledgeIndex

                self._index = KnowledgeIndex.load(build, self._encoder)
                self._build = build
                logger.info("editor preview loaded knowledge build %s", build.name)
            return self._index

    def query_encoder(self) -> Encoder | None:
        """The encoder for drafts: the injected one, else the live build's."""
        if self._encoder is not None:
            return self._encoder
        index = self.current()
        return None if index is None else index.encoder

    def with_draft(self, draft: Article) -> KnowledgeIndex:
        """The live build with ``draft`` in place (:func:`draft_index`), kept for re-use.

        The last :data:`KEPT_DRAFT_INDEXES` are kept by build and draft content, so a
        preview that only changes the test questions trains nothing again.

        Raises:
            knowledge.index.KnowledgeIndexError: The live build can't be loaded.
            knowledge.encoder.EncoderUnavailableError: No query encoder.
        """
        live = self.current()
        encoder = self.query_encoder()
        if encoder is None:
            from knowledge.encoder import default_encoder

            encoder = default_encoder()
        key = (self._build if live is not None else None, draft.model_dump_json())
        with self._lock:
            kept = self._drafts.get(key)
            if kept is not None:
                self._drafts.move_to_end(key)
                return kept
        started = time.perf_counter()
        index = draft_index(live, encoder, draft)
        logger.info(
            "editor preview ranked draft %s with build %s in %.2fs",
            draft.id,
            key[0].name if key[0] else "(none)",
            time.perf_counter() - started,
        )
        with self._lock:
            self._drafts[key] = index
            while len(self._drafts) > KEPT_DRAFT_INDEXES:
                self._drafts.popitem(last=False)
        return index


def preview_answers(
    preview: PreviewIndex,
    draft: Article,
    questions: list[str],
    *,
    policy: AnswerPolicy,
    segment: str | None = None,
) -> list[PreviewAnswer]:
    """Answer test questions as the bot would with the draft published.

    Args:
        preview: The live build.
        draft: The validated draft.
        questions: Up to :data:`MAX_TEST_QUESTIONS` questions (blank ones are skipped).
        policy: The deployment's answer bands.
        segment: ``b2b`` to answer as a verified business contact.

    Returns:
        One answer per non-blank question.

    Raises:
        knowledge.index.KnowledgeIndexError: The live build can't be loaded.
        knowledge.encoder.EncoderUnavailableError: No query encoder.
    """
    from knowledge.answering import answer_question

    texts = [" ".join(question.split())[:MAX_TEST_QUESTION_CHARS] for question in questions]
    texts = [text for text in texts[:MAX_TEST_QUESTIONS] if text]
    if not texts:
        return []
    source = preview.with_draft(draft)
    results = []
    for text in texts:
        answer: Answer = answer_question(source, text, segment=segment, policy=policy)
        top = answer.article
        results.append(
            PreviewAnswer(
                question=text,
                band=answer.band,
                article_id=top.article_id if top else None,
                title=top.title if top else None,
                score=round(float(answer.top.score), 3) if answer.top else None,
                is_draft=top is not None and top.article_id == draft.id,
                suggestions=[(hit.article_id, hit.title) for hit in answer.suggestions],
            )
        )
    return results
