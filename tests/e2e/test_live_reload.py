"""Editors' changes go live in the running stack within seconds: no retraining, no restart."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

from bot.config import Settings
from knowledge.encoder import default_encoder
from knowledge.store import build_and_publish
from tests.helpers.chat_client import ChatClient

NEW_ID = "orders-gift-wrapping"
QUESTION = "can I get my order gift wrapped?"
LIVE_WITHIN_SECONDS = 15
NEW_ARTICLE = f"""---
id: {NEW_ID}
title: Do you offer gift wrapping?
audience: all
tags: [orders, gifts]
questions:
  - Can you wrap my order as a present?
  - Is gift packaging available?
language: en
updated: 2026-11-01
owner: support-content
---
Yes: tick *Gift wrap* at checkout for 3.50 EUR per item and add a free message card.

## Details
Gift-wrapped parcels hide the price and ship with the normal delivery options.
"""


async def _cited_article(settings: Settings, question: str) -> str | None:
    async with ChatClient(settings.web_url) as chat:
        for reply in await chat.say(question):
            if reply.get("citation"):
                return str(reply["citation"]["article_id"])
    return None


async def _wait_for_citation(settings: Settings, question: str, expected: str | None) -> float:
    started = time.monotonic()
    while time.monotonic() - started < LIVE_WITHIN_SECONDS:
        if (await _cited_article(settings, question)) == expected:
            return time.monotonic() - started
        await asyncio.sleep(0.5)
    raise AssertionError(f"{expected!r} was not cited within {LIVE_WITHIN_SECONDS} s")


async def test_added_article_goes_live_and_retired_article_disappears(
    running_stack: Settings, tmp_path: Path
) -> None:
    articles = tmp_path / "articles"
    shutil.copytree(running_stack.articles_dir, articles)
    text = NEW_ARTICLE
    (articles / f"{NEW_ID}.md").write_text(text, encoding="utf-8")
    encoder = default_encoder()
    try:
        build_and_publish(articles, running_stack.index_dir, encoder)
        await _wait_for_citation(running_stack, QUESTION, NEW_ID)

        (articles / f"{NEW_ID}.md").unlink()
        build_and_publish(articles, running_stack.index_dir, encoder)
        deadline = time.monotonic() + LIVE_WITHIN_SECONDS
        while (await _cited_article(running_stack, QUESTION)) == NEW_ID:
            assert time.monotonic() < deadline, "retired article is still being cited"
            await asyncio.sleep(0.5)
    finally:
        build_and_publish(running_stack.articles_dir, running_stack.index_dir, encoder, force=True)
