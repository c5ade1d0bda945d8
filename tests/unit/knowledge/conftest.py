"""Builders for knowledge-base tests: article files in tmp_path and a fake encoder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.fake_encoder import FakeEncoder

DEFAULT_FIELDS: dict[str, Any] = {
    "audience": "b2c",
    "tags": ["general"],
    "questions": [],
    "language": "en",
    "updated": "2026-10-14",
    "owner": "support-team",
}

SAMPLE_ARTICLES: dict[str, dict[str, Any]] = {
    "returns-start-a-return": {
        "title": "How do I return an item?",
        "questions": ["Can I send back something I bought?", "How do returns work?"],
        "tags": ["returns"],
        "body": (
            "Start a return from My orders within 30 days of delivery. Print the prepaid "
            "label and drop the parcel off.\n\n## Details\n\nReturned items must be unused. "
            "Refunds are paid within 5 days after the warehouse receives the parcel."
        ),
    },
    "account-reset-password": {
        "title": "How do I reset my password?",
        "questions": ["I forgot my password", "Cannot log in to my account"],
        "tags": ["account"],
        "audience": "all",
        "body": (
            "Select Forgot password on the sign-in page and follow the reset link we email "
            "you.\n\n## Details\n\nThe link is valid for 60 minutes."
        ),
    },
    "delivery-track-order": {
        "title": "Where is my parcel?",
        "questions": ["Track my delivery", "When will my order arrive?"],
        "tags": ["delivery"],
        "audience": "all",
        "body": (
            "Open My orders and select Track parcel to see the courier's tracking page.\n\n"
            "## Delays\n\nCourier delays of one or two days are common in December."
        ),
    },
    "business-volume-pricing": {
        "title": "Do you offer volume discounts for businesses?",
        "questions": ["Bulk pricing for office chairs"],
        "tags": ["business", "pricing"],
        "audience": "b2b",
        "body": "Business accounts get tiered discounts from five units of the same product.",
    },
}


def article_text(article_id: str, *, body: str = "A short answer.", **fields: Any) -> str:
    """Return an article file's text; ``fields`` override the defaults (None removes)."""
    front = {"id": article_id, "title": f"Title of {article_id}", **DEFAULT_FIELDS, **fields}
    front = {key: value for key, value in front.items() if value is not None}
    dumped = yaml.safe_dump(front, sort_keys=False, allow_unicode=True)
    return f"---\n{dumped}---\n{body}\n"


def write_article(
    directory: Path, article_id: str, *, filename: str | None = None, **fields: Any
) -> Path:
    """Write one article file into ``directory`` and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (filename or f"{article_id}.md")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(article_text(article_id, **fields), encoding="utf-8")
    return path


def write_samples(directory: Path) -> Path:
    """Write the sample articles into ``directory`` and return it."""
    for article_id, fields in SAMPLE_ARTICLES.items():
        write_article(directory, article_id, **fields)
    return directory


@pytest.fixture
def articles_dir(tmp_path: Path) -> Path:
    """A folder with the four sample articles."""
    return write_samples(tmp_path / "articles")


@pytest.fixture
def encoder() -> FakeEncoder:
    """A deterministic model-free encoder."""
    return FakeEncoder()


@pytest.fixture
def make_article() -> Any:
    """The :func:`write_article` builder, as a fixture."""
    return write_article


@pytest.fixture
def make_text() -> Any:
    """The :func:`article_text` builder, as a fixture."""
    return article_text
