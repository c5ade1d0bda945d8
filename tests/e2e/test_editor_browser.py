"""An editor in real Chromium against the real stack: edit, preview, lose the session mid-edit
(the draft is kept and restored), save, publish, and the bot answers with the new text
through Rasa and the action server within 5 seconds of the click. No restart, no training.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import delete

from bot.agents.models import AgentSession
from bot.agents.service import create_agent
from bot.config import Settings
from bot.db.session import create_db_engine, create_session_factory
from bot.editor import service
from bot.editor.publishing import publish, publish_target
from bot.editor.service import Actor
from tests.helpers.axe import assert_no_axe_violations
from tests.helpers.chat_client import ChatClient

ARTICLE_ID = "delivery-international"
QUESTION = "Which countries do you ship to?"
NEW_SENTENCE = "We now also deliver to Iceland and the Faroe Islands, since this week."
LIVE_WITHIN_SECONDS = 5.0
PAGE_TIMEOUT_MS = 30_000
# The first publish in the bot service loads the torch MiniLM (warmed when the form opens).
PUBLISH_TIMEOUT_MS = 120_000
FIGURES = Path("var") / "bench" / "editor_publish_e2e.json"


def _desk_account(settings: Settings, name: str, role: str) -> tuple[str, str]:
    """A new desk user of the running stack: (e-mail, password)."""
    email = f"{name.split()[0].lower()}.{secrets.token_hex(4)}@desk.example"
    password = secrets.token_urlsafe(18)
    engine = create_db_engine(settings.database_url)
    try:
        with create_session_factory(engine)() as session:
            create_agent(
                session, email=email, name=name, password=password, role=role, actor="test"
            )
    finally:
        engine.dispose()
    return email, password


@pytest.fixture(scope="module")
def editor_account(running_stack: Settings) -> tuple[str, str]:
    return _desk_account(running_stack, "Edie Writer", "editor")


@pytest.fixture(scope="module")
def lead_account(running_stack: Settings) -> tuple[str, str]:
    return _desk_account(running_stack, "Lena Lead", "lead")


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    made = browser.new_context()
    made.set_default_timeout(PAGE_TIMEOUT_MS)
    yield made
    made.close()


def _sign_in(page: Page, settings: Settings, account: tuple[str, str]) -> None:
    page.get_by_label("E-mail address").fill(account[0])
    page.get_by_label("Password").fill(account[1])
    page.get_by_role("button", name="Sign in").click()


def _expire_sessions(settings: Settings) -> None:
    engine = create_db_engine(settings.database_url)
    try:
        with create_session_factory(engine)() as session:
            session.execute(delete(AgentSession))
            session.commit()
    finally:
        engine.dispose()


async def _answer_text(settings: Settings, question: str) -> str:
    async with ChatClient(settings.web_url) as chat:
        return " ".join(str(reply.get("text", "")) for reply in await chat.say(question))


def _answer(settings: Settings, question: str) -> str:
    """Ask through the web chat (Rasa, the action server) from a thread without a loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _answer_text(settings, question)).result(60)


def _axe(page: Page, where: str) -> None:
    """WCAG 2.1 A/AA with axe-core, in light and dark."""
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
        assert_no_axe_violations(page, where=f"{where} ({scheme})")
    page.emulate_media(color_scheme="light")


def _wait_for_publisher(page: Page, opened: float) -> float:
    """Seconds from the first editor page until the bot service's model is loaded."""
    script = "fetch('/editor/api/publisher').then(r => r.json()).then(d => d.ready)"
    while not page.evaluate(script):
        assert time.monotonic() - opened < 180, "the publisher never loaded its model"
        time.sleep(0.5)
    return time.monotonic() - opened


def _restore(settings: Settings) -> None:
    """Put the seed text back live, so other end-to-end tests see the demo articles."""
    engine = create_db_engine(settings.database_url)
    factory = create_session_factory(engine)
    try:
        with factory() as session:
            service.rollback(session, article_id=ARTICLE_ID, number=1, actor=Actor.command_line())
        publish(factory, publish_target(settings), actor=Actor.command_line(), require_review=False)
    finally:
        engine.dispose()


def test_editor_edits_previews_survives_sign_out_and_publishes_live(
    running_stack: Settings, context: BrowserContext, editor_account: tuple[str, str]
) -> None:
    settings = running_stack
    assert NEW_SENTENCE not in _answer(settings, QUESTION)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{settings.web_url}/desk/login?next=/editor/articles")
    _sign_in(page, settings, editor_account)
    page.wait_for_url(f"{settings.web_url}/editor/articles")
    opened = time.monotonic()
    _axe(page, "the editor's article list")

    page.get_by_label("Search title, id and text").fill(ARTICLE_ID)
    expect(page.locator("#article-table tbody tr")).to_have_count(1)
    page.get_by_role("link", name="Do you deliver outside my country?").click()
    page.wait_for_url(f"**/editor/articles/{ARTICLE_ID}/edit")

    body = page.get_by_label("Body (Markdown)", exact=False)
    original = body.input_value()
    first, rest = original.split("\n\n", 1)
    body.fill(f"{NEW_SENTENCE} {first}\n\n{rest}")
    # The live preview: the page as customers see it, and the bot's answer with the draft.
    expect(page.locator("#preview-page")).to_contain_text("Iceland")
    page.locator("#test-questions").fill(QUESTION)
    expect(page.locator("#preview-answers")).to_contain_text("(this draft)")
    _axe(page, "the editor's form with its preview")

    # The session expires mid-edit: saving says so and keeps every word.
    _expire_sessions(settings)
    page.get_by_label("What changed", exact=False).fill("Iceland and the Faroe Islands")
    page.get_by_role("button", name="Save revision").click()
    expect(page.locator("#form-error")).to_contain_text(
        "You were signed out; your draft is kept — sign in again."
    )
    assert "Iceland" in body.input_value()
    page.locator("#form-error").get_by_role("link", name="Sign in").click()
    _sign_in(page, settings, editor_account)
    page.wait_for_url(f"**/editor/articles/{ARTICLE_ID}/edit")
    expect(page.locator("#restore-notice")).to_be_visible()
    expect(page.get_by_label("Body (Markdown)", exact=False)).to_have_value(
        f"{NEW_SENTENCE} {first}\n\n{rest}"
    )

    page.get_by_role("button", name="Save revision").click()
    page.wait_for_url(f"**/editor/articles/{ARTICLE_ID}/edit?saved=2")
    page.goto(f"{settings.web_url}/editor/articles")
    expect(page.locator(".pending-list")).to_contain_text(ARTICLE_ID)

    # The bot service loads the torch MiniLM in the background from the first editor page;
    # the cold wait is recorded, the 5 s goal is for a publish once it is loaded.
    warm_wait = _wait_for_publisher(page, opened)
    try:
        clicked = time.monotonic()
        page.locator("#publish-button").click()
        expect(page.locator("#publish-status")).to_contain_text(
            "Published", timeout=PUBLISH_TIMEOUT_MS
        )
        published = time.monotonic() - clicked
        while NEW_SENTENCE not in _answer(settings, QUESTION):
            assert time.monotonic() - clicked < 60, "the new text never reached the bot"
            time.sleep(0.2)
        answered = time.monotonic() - clicked
        FIGURES.parent.mkdir(parents=True, exist_ok=True)
        FIGURES.write_text(
            json.dumps(
                {
                    "publisher_ready_after_s": round(warm_wait, 2),
                    "publish_seconds": round(published, 2),
                    "answer_seconds": round(answered, 2),
                }
            )
            + "\n",
            encoding="utf-8",
        )
        assert answered < LIVE_WITHIN_SECONDS, (
            f"the bot answered with the new text {answered:.1f} s after the click "
            f"(publish took {published:.1f} s)"
        )
        history = page.context.new_page()
        history.goto(f"{settings.web_url}/editor/articles/{ARTICLE_ID}/history")
        expect(history.locator("tr[data-revision='2']")).to_contain_text("Edie Writer")
        expect(history.locator("tr[data-revision='2']")).to_contain_text("published")
        expect(history.locator("table.diff")).to_contain_text("Iceland")
        _axe(history, "an article's history")
    finally:
        _restore(settings)


def test_a_lead_starts_a_tune_watches_it_and_cancels_it(
    running_stack: Settings, context: BrowserContext, lead_account: tuple[str, str]
) -> None:
    """The Tune button starts a real ``kb tune --job`` process of the bot service; the box
    follows it (htmx polling) and Cancel stops it before anything is published."""
    from knowledge.store import current_build

    settings = running_stack
    live = current_build(settings.index_dir)
    page = context.new_page()
    asked: list[str] = []
    page.on("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    page.goto(f"{settings.web_url}/desk/login?next=/editor/articles")
    _sign_in(page, settings, lead_account)
    page.wait_for_url(f"{settings.web_url}/editor/articles")
    _axe(page, "the article list with the tune box")

    page.get_by_label("Passes over the questions").fill("5")  # long enough to cancel
    page.get_by_role("button", name="Tune now").click()
    job = page.locator("#tune .tune-job")
    expect(job).to_have_attribute("data-status", re.compile("queued|running"))
    _axe(page, "the tune box while a tune runs")
    page.get_by_role("button", name="Cancel tune").click()
    expect(page.locator("#tune")).to_contain_text("stopping after this step")
    # The box polls every 2 s while the job is active: the tune process loads the model,
    # sees the request after its first step, and ends the job.
    expect(job).to_have_attribute("data-status", "cancelled", timeout=PUBLISH_TIMEOUT_MS)
    expect(job).to_contain_text("Cancelled")  # before it started, or after a step
    # Screen readers hear the change of status once, from a region the polls leave alone.
    expect(page.locator("#tune-announcer")).to_contain_text("cancelled")
    expect(page.get_by_role("button", name="Tune now")).to_be_visible()
    assert current_build(settings.index_dir) == live  # nothing was published
    assert [question.split("?")[0] for question in asked] == [
        "Start tuning the encoder",
        "Cancel this tune",
    ]
