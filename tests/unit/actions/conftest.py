"""Fixtures for the custom-action tests: isolated settings, a fake knowledge base, a demo DB."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from actions import deps
from actions.clients.bot_api import BotServiceClient
from bot.config import Settings, get_settings
from bot.rasa_client import RasaClient
from bot.web.app import create_app
from knowledge.articles import Article, load_articles
from tests.unit.actions.support import ARTICLES_DIR, FakeKnowledgeBase

SERVICE_TOKEN = "unit-test-service-token"
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


@dataclass
class BotServiceHarness:
    """The real bot service app in-process, reached by the actions' real client."""

    client: BotServiceClient
    session_factory: sessionmaker[Session]
    app: FastAPI


@pytest.fixture
async def bot_service(_template_database: Path, tmp_path: Path) -> AsyncIterator[BotServiceHarness]:
    """A private copy of the demo database behind the real bot-service app.

    The actions' :class:`BotServiceClient` talks to it through ``httpx.ASGITransport``:
    the real internal API and its token check, with no sockets.
    """
    path = tmp_path / "concierge.db"
    shutil.copyfile(_template_database, path)
    settings = Settings(
        project_root=tmp_path,
        var_dir=tmp_path / "var",
        database_url=f"sqlite:///{path}",
        service_token=SecretStr(SERVICE_TOKEN),
    )
    app = create_app(
        settings, rasa_client=RasaClient(base_url="http://rasa.test", token=None, timeout=1)
    )
    async with app.router.lifespan_context(app):
        client = BotServiceClient(
            base_url="http://bot.test/internal/v1",
            token=SERVICE_TOKEN,
            transport=httpx.ASGITransport(app=app),
        )
        deps.set_bot_service(client)
        yield BotServiceHarness(client=client, session_factory=app.state.session_factory, app=app)
        await client.aclose()


@pytest.fixture
def session_factory(bot_service: BotServiceHarness) -> sessionmaker[Session]:
    """The bot service's database, for assertions about what the actions caused."""
    return bot_service.session_factory
