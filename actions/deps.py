"""Process-wide dependencies of the custom actions, created lazily on first use.

Nothing here does I/O at import time: the action server imports every module in
``actions/`` on start-up, and the knowledge index, the embedding model and the
database engine are only opened when an action first needs them. Tests swap in
fakes with :func:`set_knowledge_base` and :func:`set_session_factory` and undo
that with :func:`reset`.

Settings come from :func:`bot.config.get_settings` (``CONCIERGE_*`` variables):
``index_dir`` for the knowledge index and ``database_url`` for the app database.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from bot.config import get_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from knowledge.articles import Article
    from knowledge.index import Hit

__all__ = [
    "KnowledgeSource",
    "SessionFactory",
    "get_knowledge_base",
    "get_session_factory",
    "reset",
    "set_knowledge_base",
    "set_session_factory",
]

logger = logging.getLogger(__name__)

SessionFactory = Callable[[], "Session"]


class KnowledgeSource(Protocol):
    """What the actions need from the knowledge base (``LiveKnowledgeBase`` or a fake)."""

    def search(self, query: str, limit: int = 3, *, audience: str | None = None) -> list[Hit]:
        """Return up to ``limit`` hits, best first, optionally for one audience."""
        ...

    def article(self, article_id: str) -> Article | None:
        """Return an article by id, or ``None``."""
        ...


_lock = threading.Lock()
_knowledge_base: KnowledgeSource | None = None
_session_factory: SessionFactory | None = None


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
            from knowledge.encoder import default_encoder
            from knowledge.store import LiveKnowledgeBase

            settings = get_settings()
            _knowledge_base = LiveKnowledgeBase(settings.index_dir, default_encoder())
            logger.info("Knowledge base follows %s", settings.index_dir)
        return _knowledge_base


def get_session_factory() -> SessionFactory:
    """Return the app database's session factory, created on first call.

    The database must already be migrated (``python -m bot setup`` does it); the
    action server never runs migrations itself.

    Returns:
        A callable returning new ``Session`` objects (usable as context managers).
    """
    global _session_factory
    with _lock:
        if _session_factory is None:
            from bot.db.session import create_db_engine, create_session_factory

            settings = get_settings()
            _session_factory = create_session_factory(create_db_engine(settings.database_url))
            logger.info("Action server database: %s", _redacted(settings.database_url))
        return _session_factory


def set_knowledge_base(knowledge_base: KnowledgeSource | None) -> None:
    """Use this knowledge base from now on (``None`` creates the real one on next use)."""
    global _knowledge_base
    with _lock:
        _knowledge_base = knowledge_base


def set_session_factory(session_factory: SessionFactory | None) -> None:
    """Use this session factory from now on (``None`` creates the real one on next use)."""
    global _session_factory
    with _lock:
        _session_factory = session_factory


def reset() -> None:
    """Forget every dependency, so the next use creates them again."""
    set_knowledge_base(None)
    set_session_factory(None)


def _redacted(database_url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(database_url).render_as_string(hide_password=True)
