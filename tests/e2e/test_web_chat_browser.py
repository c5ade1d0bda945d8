"""A customer in a real browser (Debian's Chromium, driven by Playwright) against the real stack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from bot.config import Settings
from tests.helpers.axe import assert_no_axe_violations

ANSWER_TIMEOUT_MS = 30_000


@pytest.fixture
def page(browser: Browser, running_stack: Settings) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 390, "height": 780})  # a phone
    opened = context.new_page()
    opened.goto(f"{running_stack.web_url}/")
    yield opened
    context.close()


def send(page: Page, text: str) -> None:
    box = page.get_by_label("Your message")
    box.fill(text)
    box.press("Enter")


def test_question_is_answered_from_the_right_article_with_a_citation(
    page: Page, tmp_path: Path
) -> None:
    send(page, "I want to return something I bought")
    citation = page.locator("#log .citation").last
    expect(citation).to_contain_text("How do I return an item?", timeout=ANSWER_TIMEOUT_MS)
    expect(citation.locator("a")).to_have_attribute("href", "/articles/returns-start-a-return")
    expect(page.locator("#log .message-bot .text").last).to_contain_text("My orders")
    page.screenshot(path=str(tmp_path / "answer.png"), full_page=True)


def test_asking_for_a_human_is_acknowledged_honestly(page: Page) -> None:
    send(page, "I want to talk to a real person please")
    expect(page.locator("#log")).to_contain_text("asked a member of our", timeout=ANSWER_TIMEOUT_MS)


def test_markup_in_a_message_is_shown_as_text_and_never_run(page: Page) -> None:
    hostile = '<img src=x onerror="window.__pwned = 1"><script>window.__pwned = 2</script>'
    send(page, hostile)
    expect(page.locator("#log .message-customer").last).to_contain_text(hostile)
    expect(page.locator("#log .message-bot, #log .message-system").last).to_be_visible(
        timeout=ANSWER_TIMEOUT_MS
    )
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#log img").count() == 0


def test_returning_browser_sees_its_history(page: Page) -> None:
    send(page, "how long does delivery take?")
    expect(page.locator("#log .citation").last).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    page.reload()
    expect(page.locator("#log .message-customer")).to_contain_text(
        ["how long does delivery take?"], timeout=ANSWER_TIMEOUT_MS
    )
    expect(page.locator("#log .citation")).to_have_count(1)


def test_suggestion_buttons_are_clickable_and_answer(page: Page) -> None:
    send(page, "what about the warranty on things")
    buttons = page.locator("#log .quick-reply")
    expect(buttons.first).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    count_before = page.locator("#log .message-bot").count()
    buttons.first.click()
    expect(page.locator("#log .message-bot")).to_have_count(
        count_before + 1, timeout=ANSWER_TIMEOUT_MS
    )


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_chat_page_meets_wcag_21_aa(page: Page, color_scheme: str) -> None:
    page.emulate_media(color_scheme=color_scheme)
    assert_no_axe_violations(page, where=f"the empty chat page ({color_scheme})")

    send(page, "what about the warranty on things")
    expect(page.locator("#log .quick-reply").first).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    assert_no_axe_violations(page, where=f"the chat page with suggestion buttons ({color_scheme})")

    send(page, "how long does delivery take?")
    expect(page.locator("#log .citation").last).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    assert_no_axe_violations(page, where=f"the chat page with a cited answer ({color_scheme})")
