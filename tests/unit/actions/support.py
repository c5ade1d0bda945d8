"""Fakes and builders shared by the custom-action tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from actions.clients.bot_api import BotServiceClient
from knowledge.articles import Article
from knowledge.index import Hit

PROJECT_ROOT = Path(__file__).resolve().parents[3]
ARTICLES_DIR = PROJECT_ROOT / "knowledge" / "articles"


def make_hit(article: Article, score: float) -> Hit:
    """Return a search hit for a real article."""
    return Hit(
        article_id=article.id,
        title=article.title,
        score=score,
        summary=article.summary,
        audience=article.audience,
        matched_text=article.title,
    )


@dataclass
class FakeKnowledgeBase:
    """Scripted stand-in for ``LiveKnowledgeBase``: returns the given hits, filtered by audience."""

    hits: list[Hit] = field(default_factory=list)
    articles: dict[str, Article] = field(default_factory=dict)
    error: Exception | None = None
    calls: list[tuple[str, int, str | None]] = field(default_factory=list)

    def search(self, query: str, limit: int = 3, *, audience: str | None = None) -> list[Hit]:
        self.calls.append((query, limit, audience))
        if self.error is not None:
            raise self.error
        allowed = [
            hit for hit in self.hits if audience is None or hit.audience in (audience, "all")
        ]
        return sorted(allowed, key=lambda hit: -hit.score)[:limit]

    def article(self, article_id: str) -> Article | None:
        if self.error is not None:
            raise self.error
        return self.articles.get(article_id)

    def best_hit_in(self, article_id: str, query: str) -> Hit | None:
        """The scripted hit of that article (the question is recorded, not matched)."""
        self.calls.append((query, 1, article_id))
        return next((hit for hit in self.hits if hit.article_id == article_id), None)


def unreachable_bot_service() -> BotServiceClient:
    """A bot-service client whose service is down (every request: connection refused)."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    return BotServiceClient(
        base_url="http://bot.test/internal/v1", token="t", transport=httpx.MockTransport(refuse)
    )


def message(**fields: Any) -> dict[str, Any]:
    """Return a ``CollectingDispatcher`` message with the defaults filled in."""
    base: dict[str, Any] = {
        "text": None,
        "buttons": [],
        "elements": [],
        "custom": {},
        "template": None,
        "response": None,
        "image": None,
        "attachment": None,
    }
    if "response" in fields:
        base["template"] = fields["response"]
    base.update(fields)
    return base
