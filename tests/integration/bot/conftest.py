"""Fixtures for the bot service tests: a migrated database, a fake Rasa and a TestClient."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from bot.config import Settings
from bot.db.session import upgrade_database
from bot.rasa_client import RasaClient
from bot.web.app import create_app

ARTICLE = """---
id: returns-start-a-return
title: How do I return an item?
audience: b2c
tags: [returns]
questions:
  - Can I send back something I bought?
language: en
updated: 2026-10-14
owner: returns-team
---
You can return most items within 30 days of delivery.

## Details

1. Open *My orders*.
2. Choose **Return**.

<script>alert("x")</script>

[bad link](javascript:alert(1))
"""


class FakeRasa:
    """Scripted Rasa REST channel behind ``httpx.MockTransport`` (no sockets)."""

    def __init__(self) -> None:
        self.replies: dict[str, list[dict[str, Any]]] = {}
        self.handlers: dict[str, Callable[[str], list[dict[str, Any]]]] = {}
        self.sent: list[dict[str, Any]] = []
        self.down = False

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path == "/status":
            return httpx.Response(200, json={"model_file": "models/test.tar.gz"})
        body = json.loads(request.content)
        self.sent.append(body)
        sender, text = body["sender"], body["message"]
        if text in self.handlers:
            return httpx.Response(200, json=self.handlers[text](sender))
        if text in self.replies:
            return httpx.Response(
                200, json=[{"recipient_id": sender, **item} for item in self.replies[text]]
            )
        return httpx.Response(200, json=[{"recipient_id": sender, "text": f"echo: {text}"}])


@pytest.fixture
def fake_rasa() -> FakeRasa:
    return FakeRasa()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    articles = tmp_path / "articles"
    (articles / "returns").mkdir(parents=True)
    (articles / "returns" / "returns-start-a-return.md").write_text(ARTICLE, encoding="utf-8")
    (articles / "broken-article.md").write_text("no front matter\n", encoding="utf-8")
    database_url = f"sqlite:///{tmp_path / 'var' / 'concierge.db'}"
    upgrade_database(database_url)
    return Settings(
        project_root=tmp_path,
        database_url=database_url,
        articles_dir=articles,
        max_message_chars=2000,
    )


@pytest.fixture
def client(settings: Settings, fake_rasa: FakeRasa) -> Iterator[TestClient]:
    rasa_client = RasaClient(
        base_url="http://rasa.test",
        token="test-token-123",
        timeout=5,
        transport=httpx.MockTransport(fake_rasa.handler),
    )
    app = create_app(settings, rasa_client=rasa_client)
    with TestClient(app) as test_client:
        yield test_client
