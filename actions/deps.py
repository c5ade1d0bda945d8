"""Process-wide dependencies of the custom actions, created lazily on first use.

Nothing here does I/O at import time: the action server imports every module in
``actions/`` on start-up, and the knowledge index, the embedding model and the
bot-service client are only created when an action first needs them. Tests swap in
fakes with :func:`set_knowledge_base` and :func:`set_bot_service` and undo that with
:func:`reset`.

Settings come from :func:`bot.config.get_settings` (``CONCIERGE_*`` variables):
``index_dir`` for the knowledge index, the bot service's address and
``service_token`` for its internal API. Actions never open the app database: the bot
service owns all app state.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Protocol

from bot.config import get_settings

if TYPE_CHECKING:
    from actions.clients.bot_api import BotServiceClient
    from knowledge.articles import Article
    from knowledge.index import Hit

__all__ = [
    "KnowledgeSource",
    "get_bot_service",
    "get_knowledge_base",
    "reset",
    "set_bot_service",
    "set_knowledge_base",
]

logger = logging.getLogger(__name__)


class KnowledgeSource(Protocol):
    """What the actions need from the knowledge base (``LiveKnowledgeBase`` or a fake)."""

    def search(self, query: str, limit: int = 3, *, audience: str | None = None) -> list[Hit]:
        """Return up to ``limit`` hits, best first, optionally for one audience."""
        ...

    def article(self, article_id: str) -> Article | None:
        """Return an article by id, or ``None``."""
        ...

    def best_hit_in(self, article_id: str, query: str) -> Hit | None:
        """Return the hit one article gives for a question, or ``None``."""
        ...


_lock = threading.Lock()
_knowledge_base: KnowledgeSource | None = None
_bot_service: BotServiceClient | None = None


def get_knowledge_base() -> KnowledgeSource:
    """Return the live knowledge base, created on first call.

    The index under ``settings.index_dir`` is read on the first search, and the
    embedding model is loaded on the first query; both may raise then (see
    ``knowledge.store.LiveKnowledgeBase``), never here.

    Returns:
        The process-wide knowledge base.
    """
    global _knowledge_base
    with _lock:
        if _knowledge_base is None:
            from knowledge.store import LiveKnowledgeBase
            from knowledge.threads import limit_native_threads

            limit_native_threads()  # a request-serving process: one thread per native pool
            settings = get_settings()
            # No encoder given: each build's own ONNX int8 query encoder (no torch).
            _knowledge_base = LiveKnowledgeBase(settings.index_dir)
            logger.info("Knowledge base follows %s", settings.index_dir)
        return _knowledge_base


def get_bot_service() -> BotServiceClient:
    """Return the client of the bot service's internal API, created on first call.

    Returns:
        The process-wide client (it connects on its first request).
    """
    global _bot_service
    with _lock:
        if _bot_service is None:
            from actions.clients.bot_api import BotServiceClient

            settings = get_settings()
            token = settings.service_token.get_secret_value() if settings.service_token else None
            if token is None:
                logger.warning("CONCIERGE_SERVICE_TOKEN is not set; the bot service will refuse")
            _bot_service = BotServiceClient(base_url=settings.internal_api_url, token=token)
            logger.info("Bot service internal API: %s", settings.internal_api_url)
        return _bot_service


def set_knowledge_base(knowledge_base: KnowledgeSource | None) -> None:
    """Use this knowledge base from now on (``None`` creates the real one on next use)."""
    global _knowledge_base
    with _lock:
        _knowledge_base = knowledge_base


def set_bot_service(client: BotServiceClient | None) -> None:
    """Use this bot-service client from now on (``None`` creates the real one on next use)."""
    global _bot_service
    with _lock:
        _bot_service = client


def reset() -> None:
    """Forget every dependency, so the next use creates them again."""
    set_knowledge_base(None)
    set_bot_service(None)
