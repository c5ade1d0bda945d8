"""Fixtures for the custom-action tests: isolated settings, a fake knowledge base, a demo DB."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from actions import deps
from bot.config import get_settings
from knowledge.articles import Article, load_articles
from tests.unit.actions.support import ARTICLES_DIR, FakeKnowledgeBase

ANSWER_THRESHOLD = 0.55
SUGGEST_THRESHOLD = 0.40


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point the settings at tmp_path, pin the search bands, and forget every dependency afterwards.

    The tests use answer >= 0.55, suggest >= 0.40 and top 3, whatever the tuned defaults are.
    """
    monkeypatch.setenv("CONCIERGE_KB_ANSWER_THRESHOLD", str(ANSWER_THRESHOLD))
    monkeypatch.setenv("CONCIERGE_KB_SUGGEST_THRESHOLD", str(SUGGEST_THRESHOLD))
    monkeypatch.setenv("CONCIERGE_KB_TOP_K", "3")
    monkeypatch.setenv("CONCIERGE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("CONCIERGE_DATABASE_URL", raising=False)
    monkeypatch.delenv("CONCIERGE_INDEX_DIR", raising=False)
    get_settings.cache_clear()
    deps.reset()
    yield
    deps.reset()
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def articles() -> dict[str, Article]:
    """The project's real articles, by id."""
    return {article.id: article for article in load_articles(ARTICLES_DIR)}


@pytest.fixture
def fake_kb(articles: dict[str, Article]) -> FakeKnowledgeBase:
    """A fake knowledge base installed in ``actions.deps``."""
    knowledge_base = FakeKnowledgeBase(articles=dict(articles))
    deps.set_knowledge_base(knowledge_base)
    return knowledge_base


@pytest.fixture(scope="session")
def _template_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated database with the demo customers, built once per test session."""
    from bot.accounts.demo import seed_demo_database
    from bot.db.session import upgrade_database

    path = tmp_path_factory.mktemp("db-template") / "concierge.db"
    url = f"sqlite:///{path}"
    upgrade_database(url)
    seed_demo_database(url)
    return path


@pytest.fixture
def session_factory(_template_database: Path, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A private copy of the demo database, installed in ``actions.deps``."""
    from bot.db.session import create_db_engine, create_session_factory

    path = tmp_path / "concierge.db"
    shutil.copyfile(_template_database, path)
    engine = create_db_engine(f"sqlite:///{path}")
    factory = create_session_factory(engine)
    deps.set_session_factory(factory)
    yield factory
    engine.dispose()
