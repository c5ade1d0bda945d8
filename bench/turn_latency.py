"""Latency of one knowledge-answer turn through the web chat's websocket, beside plain Rasa.

Starts a private stack (Rasa, action server, bot service) on free loopback ports, then
measures, over N turns each:
- a knowledge question sent through ``/ws/chat`` until the bot's answer has arrived
  (browser → bot service → Rasa → action server → FAISS → back), and
- a plain "hello" sent straight to Rasa's REST channel (NLU + a rule, no custom action).

Knowledge turns run in conversations of ``--per-conversation`` turns (default 10).
Reports p50/p95 of each, their ratio, and each process's resident memory afterwards.

Usage:
    python -m bench.turn_latency [--turns 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import websockets
import yaml
from rich.console import Console

from bench.common import emit, percentile, rss_mb
from bot.config import Settings, get_settings
from bot.ops.setup import prepare_state
from bot.ops.stack import isolated_settings, started_stack

QUESTIONS = Path(__file__).resolve().parent / "data" / "demo_kb_questions.yml"


async def knowledge_turns(
    settings: Settings, questions: list[str], turns: int, *, per_conversation: int
) -> list[float]:
    """Send ``turns`` questions, ``per_conversation`` per websocket conversation.

    Returns:
        Each turn's milliseconds, from sending the question to the end of the bot's reply.
    """
    url = f"ws://{settings.host}:{settings.web_port}/ws/chat"
    timings: list[float] = []
    while len(timings) < turns:
        async with websockets.connect(url, max_size=2**22) as socket:
            await socket.send(json.dumps({"type": "hello"}))
            await _until(socket, "history")
            for _ in range(min(per_conversation, turns - len(timings))):
                text = questions[len(timings) % len(questions)]
                started = time.perf_counter()
                await socket.send(json.dumps({"type": "message", "text": text}))
                await _until_turn_done(socket)
                timings.append((time.perf_counter() - started) * 1000)
    return timings


async def _until(socket: websockets.ClientConnection, frame_type: str) -> dict[str, object]:
    while True:
        frame = json.loads(await socket.recv())
        if frame.get("type") == frame_type:
            return frame


async def _until_turn_done(socket: websockets.ClientConnection) -> None:
    """A turn is done when the typing indicator goes off after the bot's reply."""
    replied = False
    while True:
        frame = json.loads(await socket.recv())
        if frame.get("type") == "message" and frame.get("role") in {"bot", "system"}:
            replied = True
        elif frame.get("type") == "error":
            raise RuntimeError(f"chat error during benchmark: {frame}")
        elif frame.get("type") == "typing" and frame.get("on") is False and replied:
            return


def greet_turns(settings: Settings, turns: int) -> list[float]:
    """Send ``turns`` "hello" messages straight to Rasa's REST channel."""
    timings: list[float] = []
    with httpx.Client(timeout=30) as client:
        for _ in range(turns):
            started = time.perf_counter()
            response = client.post(
                f"{settings.rasa_url}/webhooks/rest/webhook",
                json={"sender": f"bench-{uuid.uuid4().hex}", "message": "hello"},
            )
            response.raise_for_status()
            timings.append((time.perf_counter() - started) * 1000)
    return timings


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its JSON line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument(
        "--per-conversation",
        type=int,
        default=10,
        help="turns per conversation (default 10, a long support chat); Rasa's SQL tracker "
        "store reloads the whole history each turn, so very long conversations get slower",
    )
    args = parser.parse_args(argv)

    spec = yaml.safe_load(QUESTIONS.read_text())
    questions = [q for qs in spec["in_domain"].values() for q in qs]
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="concierge-bench-") as tmp:
        settings = isolated_settings(get_settings(), Path(tmp))
        prepare_state(settings, console)
        with started_stack(settings, console) as supervisor:
            per = args.per_conversation
            asyncio.run(knowledge_turns(settings, questions, args.warmup, per_conversation=per))
            greet_turns(settings, args.warmup)
            knowledge = asyncio.run(
                knowledge_turns(settings, questions, args.turns, per_conversation=per)
            )
            greet = greet_turns(settings, args.turns)
            memory = {s.spec.name.replace(" ", "_"): rss_mb(s.pid) for s in supervisor.services}
    p50, greet_p50 = percentile(knowledge, 0.5), percentile(greet, 0.5)
    emit(
        {
            "benchmark": "turn_latency",
            "turns": args.turns,
            "turns_per_conversation": args.per_conversation,
            "p50_ms": round(p50, 1),
            "p95_ms": round(percentile(knowledge, 0.95), 1),
            "rasa_greet_p50_ms": round(greet_p50, 1),
            "rasa_greet_p95_ms": round(percentile(greet, 0.95), 1),
            "ratio": round(p50 / greet_p50, 2),
            "rss_mb": memory,
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
