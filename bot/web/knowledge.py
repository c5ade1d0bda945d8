"""Suggested knowledge-base articles for the desk, from a lazily created live index.

The bot service does not need the knowledge index to chat (the action server answers),
so it opens one only when the desk first asks for suggestions:
:func:`get_knowledge_base` creates a :class:`knowledge.store.LiveKnowledgeBase` on
``settings.index_dir`` and keeps it on ``app.state.knowledge_base``. No query encoder is
passed, so the knowledge library picks its default: each build's own ONNX int8 query
encoder (never torch), or the torch model for an old build that names none. Tests put a
fake on ``app.state.knowledge_base`` before the first request.

Suggestions never break a page: if the index cannot be loaded or searched,
:func:`suggest_articles` logs why (with the ticket id) and returns ``None``, and the
desk shows "Suggestions unavailable".
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import anyio.to_thread
from pydantic import BaseModel, ConfigDict
from starlette.datastructures import State

from bot.config import Settings

if TYPE_CHECKING:
    from knowledge.articles import Article
    from knowledge.index import Hit

logger = logging.getLogger(__name__)

MAX_SUGGESTIONS = 3
SEARCHED_MESSAGES = 2  # the latest customer messages searched, newest first
MAX_QUERY_CHARS = 500
_MIN_QUERY_CHARS = 3
_lock = threading.Lock()


class KnowledgeSearch(Protocol):
    """The part of ``LiveKnowledgeBase`` the desk uses (tests inject a fake)."""

    def search(
        self, query: str, limit: int = 3, *, audience: str | None = None, raw: bool = False
    ) -> list[Hit]:
        """Return up to ``limit`` hits, best first (``raw``: see ``KnowledgeIndex.search``)."""
        ...

    def out_of_scope_articles(self) -> list[Article]:
        """The articles listing questions to decline (for the content-gaps page)."""
        ...


class ArticleSuggestion(BaseModel):
    """An article an agent may insert into a reply.

    Attributes:
        insert_text: What the Insert button puts into the composer: the article's short
            answer and a link to it.
    """

    model_config = ConfigDict(frozen=True)

    article_id: str
    title: str
    summary: str
    url: str
    score: float
    insert_text: str


def create_knowledge_base(settings: Settings) -> KnowledgeSearch:
    """Open the live knowledge base under ``settings.index_dir`` (read on first search).

    Native thread pools are limited as in the action server (one thread each: this is
    a request-serving process).

    Args:
        settings: The process settings.

    Returns:
        A ``LiveKnowledgeBase`` with the knowledge library's default query encoder.
    """
    from knowledge.store import LiveKnowledgeBase
    from knowledge.threads import limit_native_threads

    limit_native_threads()
    logger.info("desk suggestions follow the knowledge index at %s", settings.index_dir)
    return LiveKnowledgeBase(settings.index_dir)


def get_knowledge_base(state: State, settings: Settings) -> KnowledgeSearch:
    """Return the app's knowledge base, creating it on first use.

    Args:
        state: ``app.state`` (holds ``knowledge_base`` once created).
        settings: The process settings.

    Returns:
        The process-wide knowledge base.
    """
    existing: KnowledgeSearch | None = getattr(state, "knowledge_base", None)
    if existing is not None:
        return existing
    with _lock:
        existing = getattr(state, "knowledge_base", None)
        if existing is None:
            existing = create_knowledge_base(settings)
            state.knowledge_base = existing
        return existing


def suggestion_query(customer_texts: Sequence[str]) -> list[str]:
    """The queries to search: the latest substantive customer messages, newest first.

    Commands (``/request_human``) and one-word replies are skipped.
    """
    queries: list[str] = []
    for text in reversed(customer_texts):
        text = " ".join(text.split())
        if text.startswith("/") or len(text) < _MIN_QUERY_CHARS or " " not in text:
            continue
        queries.append(text[:MAX_QUERY_CHARS])
        if len(queries) == SEARCHED_MESSAGES:
            break
    return queries


def insert_text(*, summary: str, article_id: str, public_url: str) -> str:
    """The reply text an Insert button adds: the short answer and the article's link."""
    return f"{summary.strip()}\n\nMore details: {public_url}/articles/{article_id}"


def search_suggestions(
    knowledge_base: KnowledgeSearch,
    customer_texts: Sequence[str],
    *,
    public_url: str,
    limit: int = MAX_SUGGESTIONS,
) -> list[ArticleSuggestion]:
    """Search the latest customer messages and merge the hits (best score per article).

    Args:
        knowledge_base: The live knowledge base.
        customer_texts: The customer's messages, oldest first.
        public_url: The service's public URL (article links).
        limit: Most suggestions returned.

    Returns:
        Up to ``limit`` suggestions, best first, their summaries as plain text (the
        customer's chat shows replies as text, so Markdown is stripped).

    Raises:
        Exception: Whatever the knowledge base raises (index missing or broken).
    """
    best: dict[str, Hit] = {}
    for query in suggestion_query(customer_texts):
        for hit in knowledge_base.search(query, limit):
            if hit.article_id not in best or hit.score > best[hit.article_id].score:
                best[hit.article_id] = hit
    from knowledge.chunking import strip_markdown

    ranked = sorted(best.values(), key=lambda hit: (-hit.score, hit.article_id))[:limit]
    suggestions = []
    for hit in ranked:
        summary = strip_markdown(hit.summary)  # replies reach the customer as plain text
        suggestions.append(
            ArticleSuggestion(
                article_id=hit.article_id,
                title=hit.title,
                summary=summary,
                url=f"/articles/{hit.article_id}",
                score=round(float(hit.score), 3),
                insert_text=insert_text(
                    summary=summary, article_id=hit.article_id, public_url=public_url
                ),
            )
        )
    return suggestions


async def suggest_articles(
    state: State, settings: Settings, customer_texts: Sequence[str], *, ticket_id: int
) -> list[ArticleSuggestion] | None:
    """Suggested articles for a ticket's conversation, or ``None`` if unavailable.

    Loading and searching run in a worker thread. Any failure is logged with the
    ticket id and turned into ``None``: the page shows "Suggestions unavailable".

    Args:
        state: ``app.state``.
        settings: The process settings.
        customer_texts: The customer's messages, oldest first.
        ticket_id: The ticket (for the log).

    Returns:
        The suggestions (possibly empty), or ``None`` when the index can't be used.
    """

    def run() -> list[ArticleSuggestion]:
        knowledge_base = get_knowledge_base(state, settings)
        return search_suggestions(knowledge_base, customer_texts, public_url=settings.public_url)

    try:
        return await anyio.to_thread.run_sync(run)
    except Exception as exc:  # any failure of the index or encoder: no suggestions, no error
        from knowledge.encoder import EncoderUnavailableError
        from knowledge.index import KnowledgeIndexError

        expected = isinstance(exc, KnowledgeIndexError | EncoderUnavailableError)
        logger.warning(
            "suggestions unavailable ticket=%s: %s: %s",
            ticket_id,
            type(exc).__name__,
            exc,
            exc_info=None if expected else exc,
        )
        return None
