"""A customer and an agent in two real Chromium pages against the real stack.

The customer asks for a person in the web chat; the agent signs in through the real
``/desk/login`` form, sees the ticket arrive in the queue without reloading (server-sent
events), opens it, reads the transcript and context, claims it and replies with the
keyboard alone; the customer's page shows the reply with the agent's name, also after
closing and reopening the page; the agent hands back and the bot answers the next
question from the knowledge base, because Rasa was resumed (its tracker shows the
``pause`` and the ``resume``). axe-core checks the sign-in page, the queue and the
ticket page against WCAG 2.1 A/AA, in light and dark.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from bot.agents.service import create_agent
from bot.config import Settings
from bot.conversations.service import conversation_for_token
from bot.db.session import create_db_engine, create_session_factory
from bot.handoff.models import Ticket
from tests.helpers.axe import assert_no_axe_violations

ANSWER_TIMEOUT_MS = 30_000
LIVE_TIMEOUT_MS = 15_000
AGENT_NAME = "Robin Okafor"
AGENT_LABEL = "Robin · Kestrel support"
TOKEN_KEY = "concierge.token"
# Sets a flag if it ever runs, as an element (onerror) or as a script.
HOSTILE = '<img src=x onerror="window.__pwned = 1"><script>window.__pwned = 2</script>'
HOSTILE_LIVE = '<b onmouseover="window.__pwned = 3">bold?</b><script>window.__pwned = 4</script>'
MAX_TABS = 80


@dataclass(frozen=True)
class DeskAccount:
    email: str
    password: str


@pytest.fixture(scope="module")
def agent_account(running_stack: Settings) -> DeskAccount:
    """A Customer Care agent in the running stack's database (made with the service)."""
    email = f"robin.{secrets.token_hex(4)}@desk.example"
    password = secrets.token_urlsafe(18)
    engine = create_db_engine(running_stack.database_url)
    try:
        with create_session_factory(engine)() as session:
            create_agent(
                session,
                email=email,
                name=AGENT_NAME,
                password=password,
                team_slugs=("customer-care",),
                actor="e2e",
            )
    finally:
        engine.dispose()
    return DeskAccount(email=email, password=password)


@pytest.fixture
def customer_context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 390, "height": 780})  # a phone
    yield context
    context.close()


@pytest.fixture
def agent_context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context
    context.close()


# -- helpers ------------------------------------------------------------------------------------


def open_chat(context: BrowserContext, settings: Settings) -> Page:
    page = context.new_page()
    page.goto(f"{settings.web_url}/")
    expect(page.get_by_label("Your message")).to_be_enabled()
    return page


def say(page: Page, text: str) -> None:
    box = page.get_by_label("Your message")
    box.fill(text)
    box.press("Enter")


def wait_for_turn(page: Page, count_before: int) -> None:
    """Wait until the bot (or a notice) has answered the customer's last message."""
    expect(page.locator("#log .message-bot, #log .message-system")).not_to_have_count(
        count_before, timeout=ANSWER_TIMEOUT_MS
    )
    expect(page.locator("#typing")).to_be_hidden(timeout=ANSWER_TIMEOUT_MS)


def bot_turn_count(page: Page) -> int:
    return page.locator("#log .message-bot, #log .message-system").count()


def ticket_of(settings: Settings, page: Page) -> Ticket:
    """The latest ticket of the conversation behind the customer page's stored token."""
    token = page.evaluate(f"() => localStorage.getItem('{TOKEN_KEY}')")
    engine = create_db_engine(settings.database_url)
    try:
        with create_session_factory(engine)() as session:
            conversation = conversation_for_token(session, token)
            assert conversation is not None, "the customer page holds no known token"
            ticket = (
                session.query(Ticket)
                .filter_by(conversation_id=conversation.id)
                .order_by(Ticket.id.desc())
                .first()
            )
            assert ticket is not None, "no ticket was opened for the customer"
            session.expunge(ticket)
            return ticket
    finally:
        engine.dispose()


def sign_in(context: BrowserContext, settings: Settings, account: DeskAccount) -> Page:
    """Sign in through the real form (its CSRF cookie and field are the browser's own)."""
    page = context.new_page()
    page.goto(f"{settings.web_url}/desk/login")
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
        assert_no_axe_violations(page, where=f"the desk sign-in page ({scheme})")
    page.get_by_label("E-mail address").fill(account.email)
    page.get_by_label("Password").fill(account.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{settings.web_url}/desk")
    return page


def tab_to(page: Page, selector: str) -> None:
    """Press Tab until the focused element matches ``selector`` (keyboard only)."""
    for _ in range(MAX_TABS):
        if page.evaluate("(s) => document.activeElement?.matches(s) ?? false", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{selector} never received focus after {MAX_TABS} Tab presses")


def check_axe_both_schemes(page: Page, where: str) -> None:
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
        assert_no_axe_violations(page, where=f"{where} ({scheme})")
    page.emulate_media(color_scheme="light")


def tracker_events(settings: Settings, conversation_id: str) -> list[str]:
    assert settings.rasa_token is not None
    response = httpx.get(
        f"{settings.rasa_url}/conversations/{conversation_id}/tracker",
        params={"token": settings.rasa_token.get_secret_value(), "include_events": "ALL"},
        timeout=30,
    )
    response.raise_for_status()
    return [str(event.get("event")) for event in response.json()["events"]]


# -- the scenario -------------------------------------------------------------------------------


def test_handoff_round_trip_between_a_customer_and_an_agent(
    running_stack: Settings,
    agent_account: DeskAccount,
    customer_context: BrowserContext,
    agent_context: BrowserContext,
) -> None:
    # The agent signs in and keeps the queue open; it must never reload.
    queue = sign_in(agent_context, running_stack, agent_account)
    expect(queue.locator("#connection-state")).to_have_text(
        "Live updates are on.", timeout=LIVE_TIMEOUT_MS
    )
    queue.evaluate("() => { window.__sameDocument = true; }")
    navigations: list[str] = []
    queue.on("framenavigated", lambda frame: navigations.append(frame.url))

    # The customer writes markup, then asks for a person.
    chat = open_chat(customer_context, running_stack)
    before = bot_turn_count(chat)
    say(chat, HOSTILE)
    wait_for_turn(chat, before)
    say(chat, "I want to talk to a person")
    expect(chat.locator("#log")).to_contain_text("asked a member of our", timeout=ANSWER_TIMEOUT_MS)
    opened = ticket_of(running_stack, chat)
    conversation_id, ticket_id = opened.conversation_id, opened.id

    # The ticket appears in the open queue, pushed over SSE (no reload, no navigation).
    row = queue.locator(f'#queue-rows tr[data-ticket-id="{ticket_id}"]')
    expect(row).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    expect(row.get_by_role("button", name=f"Claim ticket #{ticket_id}")).to_be_visible()
    assert queue.evaluate("() => window.__sameDocument") is True
    assert navigations == []
    expect(queue).to_have_title(re.compile(r"^\(\d+\) Queue"))
    check_axe_both_schemes(queue, "the desk queue with a new ticket")

    # The agent opens it: transcript (markup as text) and context.
    row.get_by_role("link", name=f"#{ticket_id}").click()
    ticket = queue
    ticket.wait_for_url(f"{running_stack.web_url}/desk/tickets/{ticket_id}")
    transcript = ticket.locator("#transcript-list")
    expect(transcript.locator(".msg-customer .msg-text").first).to_have_text(HOSTILE)
    expect(transcript).to_contain_text("I want to talk to a person")
    summary = ticket.locator("section[aria-labelledby='summary-heading'] p")
    expect(summary).not_to_have_text("No summary.")
    expect(summary).not_to_be_empty()
    reason = ticket.locator("dt", has_text="Reason").locator("xpath=following-sibling::dd")
    expect(reason).to_have_text(f"{opened.reason} ({opened.reason_code})")
    expect(ticket.locator("[data-field='status_label']")).to_have_text("Waiting in queue")
    assert transcript.locator("img, script").count() == 0
    assert ticket.evaluate("() => window.__pwned") is None
    check_axe_both_schemes(ticket, "the ticket page before it is claimed")

    # Claim with the keyboard alone.
    ticket.locator("body").focus()
    tab_to(ticket, "form[data-desk-action='claim'] button")
    ticket.keyboard.press("Enter")
    expect(ticket.locator("[data-field='assignee_name']")).to_have_text(
        AGENT_NAME, timeout=LIVE_TIMEOUT_MS
    )
    expect(chat.locator("#log")).to_contain_text(
        "Robin from our Customer Care team has joined the chat.", timeout=LIVE_TIMEOUT_MS
    )

    # Reply with the keyboard alone: Tab to the message box, type, Tab to "Send reply", Enter.
    tab_to(ticket, "#composer-text")
    ticket.keyboard.type("Hello, I'm Robin. Let me look at your order.")
    tab_to(ticket, "#send-reply")
    ticket.keyboard.press("Enter")
    expect(ticket.locator("#composer-text")).to_have_value("", timeout=LIVE_TIMEOUT_MS)
    agent_messages = chat.locator("#log .message-agent")
    expect(agent_messages.last.locator(".text")).to_have_text(
        "Hello, I'm Robin. Let me look at your order.", timeout=LIVE_TIMEOUT_MS
    )
    expect(agent_messages.last.locator(".sender")).to_have_text(AGENT_LABEL)

    # Markup the customer sends while the agent owns the chat arrives live, as text,
    # and the bot stays silent.
    bot_replies = chat.locator("#log .message-bot").count()
    say(chat, HOSTILE_LIVE)
    expect(transcript.locator(".msg-customer .msg-text").last).to_have_text(
        HOSTILE_LIVE, timeout=LIVE_TIMEOUT_MS
    )
    transcript.locator(".msg-customer .msg-text").last.hover()
    assert transcript.locator("b, img, script").count() == 0
    assert ticket.evaluate("() => window.__pwned") is None
    check_axe_both_schemes(ticket, "the claimed ticket page with a live transcript")

    # The customer closes the page; two replies arrive while they are away.
    chat.close()
    away = ["Your parcel left our warehouse this morning.", "It should reach you on Friday."]
    for text in away:
        composer = ticket.locator("#composer-text")
        composer.fill(text)
        composer.press("Control+Enter")
        expect(composer).to_have_value("", timeout=LIVE_TIMEOUT_MS)
        expect(transcript.locator(".msg-agent .msg-text").last).to_have_text(text)

    # Back on the same browser (same token in localStorage): every reply, in order.
    chat = open_chat(customer_context, running_stack)
    expect(chat.locator("#log .message-agent .text")).to_have_text(
        ["Hello, I'm Robin. Let me look at your order.", *away], timeout=LIVE_TIMEOUT_MS
    )
    expect(chat.locator("#log .message-customer .text")).to_contain_text(
        [HOSTILE, "I want to talk to a person", HOSTILE_LIVE]
    )
    expect(chat.locator("#log .message-bot")).to_have_count(bot_replies)  # the bot kept quiet
    assert chat.evaluate("() => window.__pwned") is None

    # Hand back: the bot answers the next question itself, from the knowledge base.
    ticket.get_by_role("button", name="Hand back to the bot").click()
    expect(chat.locator("#log")).to_contain_text(
        "You're back with Concierge", timeout=LIVE_TIMEOUT_MS
    )
    citations_before = chat.locator("#log .citation").count()
    say(chat, "how long does delivery take?")
    expect(chat.locator("#log .citation")).to_have_count(
        citations_before + 1, timeout=ANSWER_TIMEOUT_MS
    )
    citation = chat.locator("#log .citation").last
    expect(citation).to_contain_text("How long does delivery take?")
    expect(citation.locator("a")).to_have_attribute("href", "/articles/delivery-times-and-options")
    expect(chat.locator("#log .message-bot .text").last).to_contain_text("business days")

    # Rasa's tracker was told of the takeover and of the hand-back, in that order.
    events = tracker_events(running_stack, conversation_id)
    assert "pause" in events and "resume" in events, events
    assert events.index("pause") < len(events) - 1 - events[::-1].index("resume")
