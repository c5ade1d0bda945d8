"""How fast the desk is live: a handoff reaching the agent's queue, a reply reaching the customer.

Starts a private stack (Rasa, action server, bot service) on free loopback ports, creates a
Customer Care agent and signs in through ``/desk/login``, keeps the desk's live channel
open (``GET /desk/events`` with the session cookie) and, when Chromium is installed, a
signed-in queue page in headless Chromium. Then, per handoff, in a fresh web chat
conversation over ``/ws/chat``:

(a) **request → queue**: from sending "I want to talk to a person" until the desk's SSE
    stream delivers ``ticket.created`` for that conversation (the queue page reacts to
    that event); and, in the Chromium page, until the ticket's row is in the queue table
    (the page re-reads ``/desk/api/queue`` 150 ms after an event, then draws the row);
(b) **reply → customer**: the agent claims the ticket, then from sending
    ``POST /desk/api/tickets/{id}/reply`` until the customer's websocket receives the
    reply; then the agent hands the conversation back (the queue stays short).

Bounded by ``--handoffs`` and ``--max-seconds`` (the run stops early, reporting how many it
measured) and a per-step timeout. Prints p50/p95 of each figure as one JSON line.

Usage:
    python -m bench.desk_latency [--handoffs 100] [--no-browser]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import secrets
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets
from rich.console import Console

from bench.common import emit, percentile
from bot.agents.service import create_agent
from bot.config import Settings, get_settings
from bot.db.session import create_db_engine, create_session_factory
from bot.ops.environments import CHROMIUM_HEADLESS_ARGS, CHROMIUM_PATH
from bot.ops.setup import prepare_state
from bot.ops.stack import isolated_settings, started_stack

REQUEST_TEXT = "I want to talk to a person"
TEAM = "customer-care"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
# Records, in the queue page, when each ticket's row first appears (wall-clock ms).
ROW_WATCH = """() => {
  window.__rowSeen = {};
  const rows = document.getElementById('queue-rows');
  const mark = () => {
    for (const tr of rows.querySelectorAll('tr[data-ticket-id]')) {
      const id = tr.getAttribute('data-ticket-id');
      if (!(id in window.__rowSeen)) { window.__rowSeen[id] = Date.now(); }
    }
  };
  mark();
  new MutationObserver(mark).observe(rows, {childList: true});
}"""


@dataclass
class Agent:
    """The benchmark's agent, and its session's CSRF token once signed in."""

    email: str
    password: str
    csrf_token: str = ""


@dataclass
class Figures:
    """Milliseconds per measured handoff."""

    to_sse: list[float] = field(default_factory=list)
    to_page: list[float] = field(default_factory=list)
    reply: list[float] = field(default_factory=list)


class DeskStream:
    """The desk's live channel, read in the background: ``ticket.created`` by conversation."""

    def __init__(self) -> None:
        """Start with nothing seen."""
        self.created: dict[str, tuple[float, int]] = {}
        self.ready = asyncio.Event()
        self._arrived: dict[str, asyncio.Event] = {}

    def _event(self, conversation_id: str) -> asyncio.Event:
        return self._arrived.setdefault(conversation_id, asyncio.Event())

    async def read(self, client: httpx.AsyncClient) -> None:
        """Read ``/desk/events`` until cancelled, noting when each ticket.created arrives."""
        async with client.stream("GET", "/desk/events", timeout=None) as response:
            response.raise_for_status()
            name = ""
            async for line in response.aiter_lines():
                now = time.perf_counter()
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:") and name == "ready":
                    self.ready.set()
                elif line.startswith("data:") and name == "ticket.created":
                    event = json.loads(line[5:])
                    conversation_id = str(event.get("conversation_id"))
                    self.created.setdefault(conversation_id, (now, int(event["ticket_id"])))
                    self._event(conversation_id).set()

    async def wait_created(self, conversation_id: str, timeout: float) -> tuple[float, int]:
        """When (perf_counter) the conversation's ticket was announced, and its id."""
        await asyncio.wait_for(self._event(conversation_id).wait(), timeout)
        return self.created[conversation_id]


def create_bench_agent(settings: Settings) -> Agent:
    """A Customer Care agent in the stack's database, made with the service."""
    email = f"bench.{secrets.token_hex(4)}@desk.example"
    password = secrets.token_urlsafe(18)
    engine = create_db_engine(settings.database_url)
    try:
        with create_session_factory(engine)() as session:
            create_agent(
                session,
                email=email,
                name="Bench Agent",
                password=password,
                team_slugs=(TEAM,),
                actor="bench",
            )
    finally:
        engine.dispose()
    return Agent(email=email, password=password)


async def sign_in(client: httpx.AsyncClient, agent: Agent) -> None:
    """Sign in through the real form (its CSRF cookie and field), then read the session's token.

    Raises:
        RuntimeError: The desk did not accept the sign-in.
    """
    form = await client.get("/desk/login")
    match = CSRF_FIELD.search(form.text)
    if match is None:
        raise RuntimeError("the sign-in page has no csrf_token field")
    data = {"email": agent.email, "password": agent.password, "csrf_token": match[1], "next": ""}
    done = await client.post("/desk/login", data=data, follow_redirects=False)
    if done.status_code != 303:
        raise RuntimeError(f"sign-in refused: {done.status_code} {done.text[:200]}")
    queue = await client.get("/desk")
    token = CSRF_META.search(queue.text)
    if token is None:
        raise RuntimeError("the queue page carries no CSRF token")
    agent.csrf_token = token[1]


async def next_frame(socket: websockets.ClientConnection, timeout: float) -> dict[str, Any]:
    """The next JSON frame of the chat socket."""
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), timeout))
    return frame


async def until_turn_done(socket: websockets.ClientConnection, timeout: float) -> None:
    """Read frames until the typing indicator goes off after a reply."""
    replied = False
    while True:
        frame = await next_frame(socket, timeout)
        if frame.get("type") == "error":
            raise RuntimeError(f"chat error during benchmark: {frame}")
        if frame.get("type") == "message" and frame.get("role") in {"bot", "system"}:
            replied = True
        elif frame.get("type") == "typing" and frame.get("on") is False and replied:
            return


async def until_message(
    socket: websockets.ClientConnection, *, role: str, text: str, timeout: float
) -> float:
    """The perf_counter time the message ``text`` from ``role`` arrives."""
    while True:
        frame = await next_frame(socket, timeout)
        if (frame.get("type"), frame.get("role"), frame.get("text")) == ("message", role, text):
            return time.perf_counter()


@contextlib.asynccontextmanager
async def queue_page(settings: Settings, agent: Agent) -> AsyncIterator[Any]:
    """A signed-in desk queue page in headless Chromium (its own session), watching rows."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM_PATH), headless=True, args=list(CHROMIUM_HEADLESS_ARGS)
        )
        try:
            page = await (await browser.new_context()).new_page()
            await page.goto(f"{settings.web_url}/desk/login")
            await page.get_by_label("E-mail address").fill(agent.email)
            await page.get_by_label("Password").fill(agent.password)
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(f"{settings.web_url}/desk")
            await page.wait_for_function(
                "() => document.getElementById('connection-state').textContent"
                " === 'Live updates are on.'"
            )
            await page.evaluate(ROW_WATCH)
            yield page
        finally:
            await browser.close()


async def row_seen_at(page: Any, ticket_id: int, timeout: float) -> float:
    """Wall-clock seconds when the ticket's row appeared in the Chromium queue page."""
    handle = await page.wait_for_function(
        f"() => window.__rowSeen['{ticket_id}'] || false", timeout=timeout * 1000
    )
    return float(await handle.json_value()) / 1000


async def one_handoff(
    settings: Settings,
    desk: httpx.AsyncClient,
    stream: DeskStream,
    page: Any,
    figures: Figures | None,
    *,
    timeout: float,
) -> None:
    """One handoff: request, ticket in the queue, claim, timed reply, hand back."""
    url = f"ws://{settings.host}:{settings.web_port}/ws/chat"
    async with websockets.connect(url, max_size=2**22) as socket:
        await socket.send(json.dumps({"type": "hello"}))
        session = await next_frame(socket, timeout)
        conversation_id = str(session["conversation_id"])
        await next_frame(socket, timeout)  # the (empty) history

        wall_sent = time.time()
        sent = time.perf_counter()
        await socket.send(json.dumps({"type": "message", "text": REQUEST_TEXT}))
        announced, ticket_id = await stream.wait_created(conversation_id, timeout)
        await until_turn_done(socket, timeout)
        row_at = await row_seen_at(page, ticket_id, timeout) if page is not None else None

        claimed = await desk.post(f"/desk/api/tickets/{ticket_id}/claim")
        claimed.raise_for_status()
        text = f"Hello, this is the desk ({secrets.token_hex(3)})."
        replied = time.perf_counter()
        response, received = await asyncio.gather(
            desk.post(f"/desk/api/tickets/{ticket_id}/reply", json={"text": text}),
            until_message(socket, role="agent", text=text, timeout=timeout),
        )
        response.raise_for_status()
        (await desk.post(f"/desk/api/tickets/{ticket_id}/hand-back")).raise_for_status()

    if figures is not None:
        figures.to_sse.append((announced - sent) * 1000)
        if row_at is not None:
            figures.to_page.append((row_at - wall_sent) * 1000)
        figures.reply.append((received - replied) * 1000)


async def measure(
    settings: Settings,
    agent: Agent,
    *,
    handoffs: int,
    warmup: int,
    browser: bool,
    timeout: float,
    max_seconds: float,
) -> Figures:
    """Sign in, open the live channel (and the queue page), then run the handoffs."""
    figures = Figures()
    stream = DeskStream()
    async with (
        httpx.AsyncClient(base_url=settings.web_url, timeout=timeout) as desk,
        contextlib.AsyncExitStack() as stack,
    ):
        await sign_in(desk, agent)
        desk.headers.update({"X-CSRF-Token": agent.csrf_token, "Accept": "application/json"})
        reader = asyncio.create_task(stream.read(desk))
        try:
            await asyncio.wait_for(stream.ready.wait(), timeout)
            page = None
            if browser:
                page = await stack.enter_async_context(queue_page(settings, agent))
            for _ in range(warmup):
                await one_handoff(settings, desk, stream, page, None, timeout=timeout)
            deadline = time.monotonic() + max_seconds
            while len(figures.reply) < handoffs and time.monotonic() < deadline:
                await one_handoff(settings, desk, stream, page, figures, timeout=timeout)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await reader
    return figures


def _summary(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p95_ms": None}
    return {
        "p50_ms": round(percentile(values, 0.5), 1),
        "p95_ms": round(percentile(values, 0.95), 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its JSON line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--handoffs", type=int, default=100, help="measured handoffs (100)")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured handoffs first (5)")
    parser.add_argument(
        "--max-seconds", type=float, default=900.0, help="stop measuring after this long (900)"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="per step, seconds (30)")
    parser.add_argument(
        "--no-browser", action="store_true", help="skip the Chromium queue page figure"
    )
    args = parser.parse_args(argv)
    browser = not args.no_browser and CHROMIUM_PATH.exists()

    console = Console(stderr=True)
    if not args.no_browser and not browser:
        console.print("[yellow]No Chromium (python -m bot setup --for-tests): no page figure[/]")
    with tempfile.TemporaryDirectory(prefix="concierge-bench-") as tmp:
        settings = isolated_settings(get_settings(), Path(tmp))
        prepare_state(settings, console)
        agent = create_bench_agent(settings)
        with started_stack(settings, console):
            started = time.monotonic()
            figures = asyncio.run(
                measure(
                    settings,
                    agent,
                    handoffs=args.handoffs,
                    warmup=args.warmup,
                    browser=browser,
                    timeout=args.timeout,
                    max_seconds=args.max_seconds,
                )
            )
            seconds = time.monotonic() - started
    if len(figures.reply) < args.handoffs:
        console.print(
            f"[yellow]stopped after {args.max_seconds:.0f} s: "
            f"{len(figures.reply)} of {args.handoffs} handoffs measured[/]"
        )
    request_sse = _summary(figures.to_sse)
    request_page = _summary(figures.to_page)
    reply = _summary(figures.reply)
    emit(
        {
            "benchmark": "desk_latency",
            "handoffs": len(figures.reply),
            "seconds": round(seconds, 1),
            "request_to_queue_sse_p50_ms": request_sse["p50_ms"],
            "request_to_queue_sse_p95_ms": request_sse["p95_ms"],
            "request_to_queue_page_p50_ms": request_page["p50_ms"],
            "request_to_queue_page_p95_ms": request_page["p95_ms"],
            "reply_to_customer_p50_ms": reply["p50_ms"],
            "reply_to_customer_p95_ms": reply["p95_ms"],
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
