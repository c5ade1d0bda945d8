"""What 1,000 idle web-chat connections cost the bot service, and whether it still answers.

Starts a private stack (Rasa, action server, bot service) on free loopback ports, asks one
question on a fresh connection (the baseline), then opens ``--connections`` websockets to
``/ws/chat`` that each say hello (a new conversation each: the ``session`` and ``history``
frames) and then send nothing. With all of them open it asks questions on new connections,
waits ``--idle-seconds``, checks that every idle socket is still open, and reports the bot
service's resident memory before and after, per connection. Then it closes them, opens and
closes as many again (``--rounds`` in all), and reports the memory after each round: a leak
keeps growing, memory the allocator keeps for reuse levels off.

The process's open-file limit is raised to its hard limit (or enough for the sockets, if
less) before the stack starts, so the bot service, which inherits it, can hold them too.

Bounded: at most 5,000 connections, opened ``--concurrency`` at a time; ``--max-seconds``
stops the whole run (default 600). Loopback only.

Usage:
    python -m bench.idle_connections [--connections 1000] [--idle-seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import websockets
from rich.console import Console

from bench.common import emit, percentile, rss_mb
from bot.config import Settings, get_settings
from bot.ops.setup import prepare_state
from bot.ops.stack import isolated_settings, started_stack

MAX_CONNECTIONS = 5000
FILES_PER_CONNECTION = 2  # the client's socket and the bot service's (in another process)
SPARE_FILES = 512
QUESTION = "how long does delivery take?"
FRAME_TIMEOUT = 30.0


def raise_open_file_limit(needed: int) -> tuple[int, int]:
    """Raise the soft open-file limit towards ``needed`` (never above the hard limit).

    Returns:
        The soft and hard limits now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if wanted > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


async def _frame(socket: websockets.ClientConnection, frame_type: str) -> dict[str, Any]:
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), FRAME_TIMEOUT))
        if frame.get("type") == frame_type:
            return dict(frame)


async def open_idle(url: str) -> websockets.ClientConnection:
    """Open one connection that says hello, gets its conversation, and then idles."""
    socket = await websockets.connect(url, open_timeout=FRAME_TIMEOUT)
    await socket.send(json.dumps({"type": "hello"}))
    await _frame(socket, "session")
    await _frame(socket, "history")
    return socket


async def ask(url: str, text: str = QUESTION) -> tuple[float, dict[str, Any]]:
    """One question on a new connection: milliseconds to the end of the answer, the answer."""
    async with websockets.connect(url, open_timeout=FRAME_TIMEOUT) as socket:
        await socket.send(json.dumps({"type": "hello"}))
        await _frame(socket, "history")
        started = time.perf_counter()
        await socket.send(json.dumps({"type": "message", "text": text}))
        answer: dict[str, Any] = {}
        while True:
            frame = json.loads(await asyncio.wait_for(socket.recv(), FRAME_TIMEOUT))
            if frame.get("type") == "message" and frame.get("role") in {"bot", "system"}:
                answer = answer or frame
            elif frame.get("type") == "typing" and frame.get("on") is False and answer:
                return (time.perf_counter() - started) * 1000, answer


async def measure(
    settings: Settings,
    web_pid: int,
    *,
    connections: int,
    concurrency: int,
    idle_seconds: float,
    rounds: int,
) -> dict[str, Any]:
    """Open the idle connections and measure (see the module docstring)."""
    url = f"ws://{settings.host}:{settings.web_port}/ws/chat"
    for _ in range(3):  # warm up: the first turns load what a turn needs
        await ask(url)
    before_ms, _ = await ask(url)
    await asyncio.sleep(1)
    rss_before = rss_mb(web_pid)

    gate = asyncio.Semaphore(concurrency)

    async def bounded_open() -> websockets.ClientConnection:
        async with gate:
            return await open_idle(url)

    started = time.perf_counter()
    results = await asyncio.gather(
        *(bounded_open() for _ in range(connections)), return_exceptions=True
    )
    open_seconds = time.perf_counter() - started
    sockets = [r for r in results if isinstance(r, websockets.ClientConnection)]
    failures = [repr(r) for r in results if isinstance(r, BaseException)]
    try:
        await asyncio.sleep(2)  # let the service settle
        rss_open = rss_mb(web_pid)
        meanwhile = [await ask(url) for _ in range(5)]
        await asyncio.sleep(idle_seconds)
        still_open = sum(1 for s in sockets if s.state is websockets.protocol.State.OPEN)
        rss_after_idle = rss_mb(web_pid)
        late_ms, late_answer = await ask(url)
    finally:
        await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)
    await asyncio.sleep(2)
    rss_closed = rss_mb(web_pid)
    # Open and close as many again: memory a leak keeps grows round after round; memory
    # the allocator merely kept for reuse levels off.
    after_rounds = [rss_closed]
    for _ in range(rounds - 1):
        again = await asyncio.gather(
            *(bounded_open() for _ in range(connections)), return_exceptions=True
        )
        await asyncio.gather(
            *(s.close() for s in again if isinstance(s, websockets.ClientConnection)),
            return_exceptions=True,
        )
        await asyncio.sleep(2)
        after_rounds.append(rss_mb(web_pid))
    answered = [answer for _, answer in meanwhile] + [late_answer]
    opened = len(sockets)
    return {
        "connections": connections,
        "opened": opened,
        "open_failures": len(failures),
        "first_failures": failures[:3],
        "open_seconds": round(open_seconds, 1),
        "idle_seconds": idle_seconds,
        "still_open_after_idle": still_open,
        "web_rss_mb_before": rss_before,
        "web_rss_mb_open": rss_open,
        "web_rss_mb_after_idle": rss_after_idle,
        "web_rss_mb_after_close": rss_closed,
        "web_rss_mb_after_each_round": after_rounds,
        "web_kb_per_connection": (
            round((rss_after_idle - rss_before) * 1024 / opened, 1) if opened else None
        ),
        "question_ms_before": round(before_ms, 1),
        "question_ms_meanwhile_p50": round(percentile([ms for ms, _ in meanwhile], 0.5), 1),
        "question_ms_meanwhile_max": round(max(ms for ms, _ in meanwhile), 1),
        "question_ms_after_idle": round(late_ms, 1),
        "answered_meanwhile": sum(1 for a in answered if a.get("role") == "bot"),
        "answers_with_citation": sum(1 for a in answered if a.get("citation")),
        "questions_meanwhile": len(answered),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its JSON line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=3, help="open-and-close rounds (1-5)")
    parser.add_argument("--max-seconds", type=float, default=600.0)
    args = parser.parse_args(argv)
    if not 1 <= args.connections <= MAX_CONNECTIONS:
        parser.error(f"--connections must be between 1 and {MAX_CONNECTIONS}")
    if not 1 <= args.rounds <= 5:
        parser.error("--rounds must be between 1 and 5")

    soft, hard = raise_open_file_limit(args.connections * FILES_PER_CONNECTION + SPARE_FILES)
    if soft < args.connections * FILES_PER_CONNECTION + SPARE_FILES:
        parser.error(
            f"the open-file limit is {soft} (hard {hard}); {args.connections} connections need "
            f"about {args.connections * FILES_PER_CONNECTION + SPARE_FILES}: raise the hard "
            "limit (ulimit -Hn) or open fewer"
        )
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="concierge-idle-") as tmp:
        settings = isolated_settings(get_settings(), Path(tmp))
        # The hellos arrive back to back; the rate limit is per conversation and the
        # questions are one per conversation, so it stays on as in production.
        prepare_state(settings, console)
        with started_stack(settings, console) as supervisor:
            web = next(s for s in supervisor.services if s.spec.name == "bot service")
            figures = asyncio.run(
                asyncio.wait_for(
                    measure(
                        settings,
                        web.pid,
                        connections=args.connections,
                        concurrency=args.concurrency,
                        idle_seconds=args.idle_seconds,
                        rounds=args.rounds,
                    ),
                    args.max_seconds,
                )
            )
            log = (settings.log_dir / "web.log").read_text(encoding="utf-8", errors="replace")
    emit(
        {
            "benchmark": "idle_connections",
            "open_file_limit": soft,
            "web_log_errors": log.count(" ERROR "),
            **figures,
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
