"""How the bot would answer test questions with a draft in place, before publishing.

:class:`DraftSearch` is searchable like the live index: the live build's hits without
the article being edited, plus the draft scored by the build's own query encoder over
the draft's title, alternate questions and body passages (the texts an index embeds for
an article). :func:`knowledge.answering.answer_question` then makes the same decision
the bot and ``kb search`` make: answer, suggest, or "I don't know".

Approximation, said plainly: the draft's score is its best cosine, as the published
index's score is (the classifier head only re-orders in ``rerank`` mode, and it is
retrained on publish; BM25, when the knowledge base ranks with it, only re-orders too),
and the draft is embedded with the ONNX query encoder rather than the torch model that
builds the index (probe cosine above 0.99, see :mod:`knowledge.onnx_encoder`). The live
build is loaded once per build and shared.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from knowledge.articles import Article

if TYPE_CHECKING:
    from knowledge.answering import Answer, AnswerPolicy
    from knowledge.encoder import Encoder
    from knowledge.index import Hit, KnowledgeIndex

logger = logging.getLogger(__name__)

MAX_TEST_QUESTIONS = 10
MAX_TEST_QUESTION_CHARS = 300


def draft_texts(article: Article) -> list[str]:
    """The texts an index embeds for an article: title, questions, body passages."""
    from knowledge.chunking import chunk_article

    seen: set[str] = set()
    texts = []
    for text in [article.title, *article.questions, *chunk_article(article)]:
        key = " ".join(text.lower().split())
        if key and key not in seen:
            seen.add(key)
            texts.append(text)
    return texts


def _normalised(vectors: Any) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return array / norms


class DraftSearch:
    """The live index with one article replaced (or added) by a draft."""

    def __init__(self, index: KnowledgeIndex | None, encoder: Encoder, draft: Article) -> None:
        self._index = index
        self._encoder = encoder
        self._draft = draft
        self._texts = draft_texts(draft)
        self._vectors = _normalised(encoder.encode(self._texts))

    def search(self, query: str, limit: int = 3, *, audience: str | None = None) -> list[Hit]:
        """Search the live index and the draft together, best score first.

        Out-of-scope articles (the draft among them) decline as in
        :meth:`KnowledgeIndex.search`: the ranking is merged first, then the rule applied.
        """
        from knowledge.index import Hit, answerable_hits

        if not query.strip() or limit < 1:
            return []
        live = []
        if self._index is not None:
            wanted = limit + 1 + len(self._index.out_of_scope_articles)
            live = [
                hit
                for hit in self._index.search(query, wanted, audience=audience, raw=True)
                if hit.article_id != self._draft.id
            ]
        if audience and self._draft.audience not in (audience, "all"):
            return answerable_hits(live, limit)
        query_vector = _normalised(self._encoder.encode([query.strip()]))[0]
        scores = self._vectors @ query_vector
        best = int(np.argmax(scores))
        draft_hit = Hit(
            article_id=self._draft.id,
            title=self._draft.title,
            score=float(min(1.0, max(-1.0, scores[best]))),
            summary=self._draft.summary,
            audience=self._draft.audience,
            matched_text=self._texts[best],
            out_of_scope=self._draft.out_of_scope,
        )
        position = next(
            (number for number, hit in enumerate(live) if hit.score < draft_hit.score), len(live)
        )
        return answerable_hits([*live[:position], draft_hit, *live[position:]], limit)


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

    encoder = preview.query_encoder()
    index = preview.current()
    if encoder is None:
        from knowledge.encoder import default_encoder

        encoder = default_encoder()
    source = DraftSearch(index, encoder, draft)
    results = []
    for question in questions[:MAX_TEST_QUESTIONS]:
        text = " ".join(question.split())[:MAX_TEST_QUESTION_CHARS]
        if not text:
            continue
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
