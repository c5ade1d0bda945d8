"""The chat page's attachments and desk messages in a real browser (Debian's Chromium).

The bot service runs in this process (uvicorn on 127.0.0.1, a scripted Rasa behind
``httpx.MockTransport``), so the test can act as the desk through ``app.state.desk``
on the server's own event loop: what the page receives is exactly what an agent's
reply, a resolve or a hand-back publishes.
"""

from __future__ import annotations

import asyncio
import json
import struct
import threading
import time
import zlib
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import Browser, FilePayload, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.accounts.demo import load_demo_data
from bot.agents.service import create_agent
from bot.config import Settings
from bot.conversations import attachments as files
from bot.conversations.models import Conversation
from bot.db.session import upgrade_database
from bot.handoff import service as tickets
from bot.handoff.desk import Desk
from bot.handoff.models import Ticket
from bot.ops.stack import free_port
from bot.rasa_client import RasaClient
from bot.web.app import create_app
from tests.helpers.axe import assert_no_axe_violations

TIMEOUT_MS = 10_000
_T = TypeVar("_T")


def tiny_png(width: int = 24, height: int = 16) -> bytes:
    """A real PNG (orange), so the browser can decode the thumbnail."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + bytes([230, 120, 30]) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def _file(name: str, mime_type: str, content: bytes) -> FilePayload:
    return {"name": name, "mimeType": mime_type, "buffer": content}


def _rasa(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/tracker/events"):
        return httpx.Response(200, json={})
    body = json.loads(request.content)
    return httpx.Response(
        200, json=[{"recipient_id": body["sender"], "text": f"echo: {body['message']}"}]
    )


@dataclass
class Served:
    url: str
    app: FastAPI
    loop: asyncio.AbstractEventLoop
    settings: Settings

    def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Run a coroutine on the server's event loop (where the broker lives)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self.app.state.session_factory  # type: ignore[no-any-return,unused-ignore]

    @property
    def desk(self) -> Desk:
        return self.app.state.desk  # type: ignore[no-any-return,unused-ignore]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    database_url = f"sqlite:///{tmp_path / 'var' / 'concierge.db'}"
    upgrade_database(database_url)
    port = free_port()
    settings = Settings(project_root=tmp_path, database_url=database_url, web_port=port)
    rasa = RasaClient(
        base_url="http://rasa.test",
        token="t0ken-for-tests",
        timeout=5,
        transport=httpx.MockTransport(_rasa),
    )
    app = create_app(settings, rasa_client=rasa)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the bot service did not start")
        time.sleep(0.05)
    with app.state.session_factory() as session:
        load_demo_data(session)
    try:
        yield Served(url=f"http://127.0.0.1:{port}", app=app, loop=loop, settings=settings)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        loop.close()


@pytest.fixture
def page(browser: Browser, served: Served) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 390, "height": 780})
    opened = context.new_page()
    opened.goto(f"{served.url}/")
    expect(opened.locator("#status")).to_have_text("", timeout=TIMEOUT_MS)  # connected
    yield opened
    context.close()


def _conversation_id(served: Served) -> str:
    with served.sessions() as session:
        (conversation_id,) = session.scalars(select(Conversation.id)).all()
        return conversation_id


def _ticket_with_agent(served: Served) -> tuple[int, int]:
    """Open a ticket for the page's conversation and have an agent claim it."""
    conversation_id = _conversation_id(served)
    with served.sessions() as session:
        agent = create_agent(
            session,
            email="alex@kestrel.example",
            name="Alex Morgan",
            password="correct-horse-battery",
            team_slugs=["customer-care"],
        )
        ticket = tickets.open_ticket(
            session,
            conversation_id=conversation_id,
            reason_code="customer_request",
            reason="customer asked for a human",
            context={},
        ).ticket
        ids = ticket.id, agent.id
    served.run(served.desk.claim(ticket_id=ids[0], agent_id=ids[1]))
    return ids


def test_a_photo_is_sent_from_the_keyboard_and_shown_as_a_thumbnail(page: Page) -> None:
    # Playwright turns file-chooser interception on when the first listener subscribes;
    # subscribing ahead keeps the key press below from racing that switch.
    page.on("filechooser", lambda _chooser: None)
    page.evaluate("() => new Promise(requestAnimationFrame)")
    attach = page.get_by_role("button", name="Attach")
    attach.focus()
    expect(attach).to_be_focused()
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    chooser.value.set_files(files=[_file("damaged parcel.png", "image/png", tiny_png())])

    thumbnail = page.get_by_role("img", name="damaged parcel.png")
    expect(thumbnail).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator("#log .message-customer .text").last).to_have_text("📎 damaged parcel.png")
    page.wait_for_function(
        "() => { const i = document.querySelector('#log img.thumbnail');"
        " return i && i.complete && i.naturalWidth === 24; }",
        timeout=TIMEOUT_MS,
    )
    expect(page.locator("#log")).to_contain_text("I can't look at files myself")
    expect(page.locator("#status")).to_have_text("Sent damaged parcel.png.")
    expect(attach).to_be_focused()

    page.reload()  # the history shows it once, with a fresh link
    expect(page.locator("#log img.thumbnail")).to_have_count(1, timeout=TIMEOUT_MS)


def test_refused_files_get_one_polite_sentence(page: Page, served: Served) -> None:
    chooser = page.locator("#attachment")
    big = b"\x89PNG\r\n\x1a\n" + b"\x00" * served.settings.max_attachment_bytes
    chooser.set_input_files(files=[_file("huge.png", "image/png", big)])
    expect(page.locator("#log .message-system .text").last).to_have_text(
        "Sorry — that file is too big; attachments can be up to 5 MB.", timeout=TIMEOUT_MS
    )
    chooser.set_input_files(files=[_file("cat.gif", "image/gif", b"GIF89a" + b"\x00" * 30)])
    expect(page.locator("#log .message-system .text").last).to_have_text(files.UNSUPPORTED_TYPE)
    # A file that says it is a PNG but isn't: the server refuses it.
    chooser.set_input_files(files=[_file("fake.png", "image/png", b"<html>hi</html>" * 9)])
    expect(page.locator("#log .message-system .text").last).to_have_text(
        files.UNSUPPORTED_TYPE, timeout=TIMEOUT_MS
    )
    expect(page.locator("#log .message-system")).to_have_count(3)
    expect(page.locator("#log .message-upload")).to_have_count(0)
    assert not any(p.is_file() for p in served.settings.attachments_dir.glob("??/*"))


def test_agent_replies_and_rating_buttons_arrive_unprompted_and_work(
    page: Page, served: Served
) -> None:
    ticket_id, agent_id = _ticket_with_agent(served)
    expect(page.locator("#log .message-system .text").last).to_have_text(
        "Alex from our Customer Care team has joined the chat.", timeout=TIMEOUT_MS
    )
    store = served.app.state.attachments
    stored = served.run(store.store(_chunks(PDF), declared_type="application/pdf"))
    label = served.run(
        store.db(
            files.add_attachment,
            conversation_id=_conversation_id(served),
            stored=stored,
            filename="returns-label.pdf",
            uploaded_by=f"agent:{agent_id}",
        )
    )
    served.run(
        served.desk.reply(
            ticket_id=ticket_id,
            agent_id=agent_id,
            text="Here is your returns label.",
            attachment_ids=(label.id,),
        )
    )

    reply = page.locator("#log .message-agent").last
    expect(reply.locator(".sender")).to_have_text("Alex · Kestrel support", timeout=TIMEOUT_MS)
    expect(reply.locator(".text")).to_have_text("Here is your returns label.")
    link = reply.get_by_role("link", name=f"returns-label.pdf (PDF, {len(PDF)} bytes)")
    assert (link.get_attribute("href") or "").startswith(f"/attachments/{label.id}?exp=")
    with page.expect_download() as download:
        link.click()
    assert Path(download.value.path()).read_bytes() == PDF

    served.run(served.desk.resolve(ticket_id=ticket_id, agent_id=agent_id, note="label sent"))
    stars = page.locator("#log .message-system", has_text="How did we do?").locator(".quick-reply")
    expect(stars).to_have_count(5, timeout=TIMEOUT_MS)
    stars.first.click()
    expect(page.locator("#log .message-system .text").last).to_have_text(
        tickets.RATED, timeout=TIMEOUT_MS
    )
    expect(stars.first).to_be_disabled()
    expect(stars.first).to_have_attribute("aria-pressed", "true")
    with served.sessions() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None and ticket.rating == 5

    # Everything once, after a reload too: history and pushed messages share ids.
    for _ in range(2):
        expect(page.locator("#log .message-agent")).to_have_count(1, timeout=TIMEOUT_MS)
        expect(page.locator("#log .message-system", has_text="has joined")).to_have_count(1)
        page.reload()


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_chat_with_files_and_agents_meets_wcag_21_aa(
    page: Page, served: Served, color_scheme: Literal["light", "dark"]
) -> None:
    page.emulate_media(color_scheme=color_scheme)
    page.locator("#attachment").set_input_files(
        files=[_file("parcel.png", "image/png", tiny_png())]
    )
    expect(page.get_by_role("img", name="parcel.png")).to_be_visible(timeout=TIMEOUT_MS)
    ticket_id, agent_id = _ticket_with_agent(served)
    served.run(served.desk.reply(ticket_id=ticket_id, agent_id=agent_id, text="Thanks, on it."))
    served.run(served.desk.resolve(ticket_id=ticket_id, agent_id=agent_id, note="done"))
    expect(page.locator("#log .quick-reply")).to_have_count(5, timeout=TIMEOUT_MS)
    assert_no_axe_violations(
        page, where=f"the chat with a photo, an agent and ratings ({color_scheme})"
    )
    page.screenshot(path=str(served.settings.var_dir / f"chat-{color_scheme}.png"))


async def _chunks(content: bytes) -> AsyncIterator[bytes]:
    yield content
