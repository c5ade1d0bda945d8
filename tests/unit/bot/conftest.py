"""Fixtures for the bot unit tests: a migrated SQLite file per test and a scripted Rasa."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.accounts.demo import load_demo_data
from bot.db.session import create_db_engine, create_session_factory, upgrade_database
from bot.rasa_client import RasaClient

Reply = list[dict[str, Any]] | Callable[[str, str], list[dict[str, Any]]]


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database file migrated once with Alembic; each test gets a copy."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade_database(f"sqlite:///{path}")
    return path


@pytest.fixture
def database_url(tmp_path: Path, migrated_template: Path) -> str:
    target = tmp_path / "app.db"
    shutil.copyfile(migrated_template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_db_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return create_session_factory(engine)


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    with session_factory() as session:
        yield session


@pytest.fixture
def demo_session(session: Session) -> Session:
    load_demo_data(session)
    return session


class ScriptedRasa:
    """A fake Rasa REST channel for ``httpx.MockTransport``.

    ``replies`` maps a message text to the JSON list to answer (or a callable taking
    ``(sender, text)``); other texts get ``"echo: <text>"``. ``down`` makes every request
    fail like a refused connection; ``status_code`` forces an HTTP status.
    """

    def __init__(self) -> None:
        self.replies: dict[str, Reply] = {}
        self.requests: list[httpx.Request] = []
        self.down = False
        self.status_code = 200
        self.raw_body: bytes | None = None
        self.tracker_events: list[tuple[str, list[dict[str, Any]]]] = []

    @property
    def sent(self) -> list[dict[str, Any]]:
        return [
            json.loads(request.content)
            for request in self.requests
            if request.url.path == "/webhooks/rest/webhook"
        ]

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if self.status_code != 200 or self.raw_body is not None:
            return httpx.Response(self.status_code, content=self.raw_body or b"{}")
        if request.url.path == "/status":
            return httpx.Response(200, json={"model_file": "models/test.tar.gz"})
        if request.url.path.endswith("/tracker/events"):
            self.tracker_events.append(
                (request.url.path.split("/")[2], json.loads(request.content))
            )
            return httpx.Response(200, json={})
        if request.url.path.endswith("/tracker"):
            return httpx.Response(200, json={"sender_id": request.url.path.split("/")[2]})
        body = json.loads(request.content)
        sender, text = body["sender"], body["message"]
        reply = self.replies.get(text)
        if reply is None:
            data: list[dict[str, Any]] = [{"recipient_id": sender, "text": f"echo: {text}"}]
        elif callable(reply):
            data = reply(sender, text)
        else:
            data = [{"recipient_id": sender, **item} for item in reply]
        return httpx.Response(200, json=data)

    def client(self, *, token: str | None = "secret-token", timeout: float = 5.0) -> RasaClient:
        return RasaClient(
            base_url="http://rasa.test",
            token=token,
            timeout=timeout,
            transport=httpx.MockTransport(self.handler),
        )


@pytest.fixture
def rasa() -> ScriptedRasa:
    return ScriptedRasa()
