"""Latency of one knowledge-answer turn through the web chat's websocket, beside plain Rasa.

Starts a private stack (Rasa, action server, bot service) on free loopback ports, then
measures, over N turns each:
- a knowledge question sent through ``/ws/chat`` until the bot's answer has arrived
  (browser → bot service → Rasa → action server → FAISS → back), and
- a plain "hello" sent straight to Rasa's REST channel (NLU + a rule, no custom action),
  the issue's yardstick (``ratio`` = knowledge p50 ÷ this greet p50), and
- the same "hello" sent through ``/ws/chat`` like the questions, so through the bot
  service's admission and storing too (``ratio_same_path`` = knowledge p50 ÷ this p50):
  the fair comparison of what a knowledge answer adds to a turn.

The three are measured interleaved (a question, a websocket hello, a REST hello, and
again), so load from elsewhere on the machine hits them alike. Knowledge and websocket
greet turns run in conversations of ``--per-conversation`` turns (default 10). Reports
p50/p95 of each, the ratios, and each process's resident memory afterwards.

The stack runs with ``CONCIERGE_TURN_TIMING_LOG=true``: the bot service logs where each
turn's time went (``bot.chat.timing``: admission, Rasa, the action's own run with its
encoding and search, storing the replies), and the benchmark prints the p50/p95 of each
stage over the measured knowledge turns, read back from the bot service's log.

``--long-conversation N`` also compares one N-turn conversation with 10-turn ones, turn
for turn: each turn of the long conversation is followed by a turn of a short one (a new
short conversation every 10 turns), so load from elsewhere on the machine hits both
alike; it reports both p95s and their ratio (the goal: within 1.2).

Usage:
    python -m bench.turn_latency [--turns 200] [--long-conversation 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import websockets
import yaml
from rich.console import Console

from bench.common import emit, percentile, rss_mb
from bot.chat.timing import STAGES, parse_timing_line
from bot.config import Settings, get_settings
from bot.ops.setup import prepare_state
from bot.ops.stack import isolated_settings, started_stack

QUESTIONS = Path(__file__).resolve().parent / "data" / "demo_kb_questions.yml"


async def knowledge_turns(
    settings: Settings,
    questions: list[str],
    turns: int,
    *,
    per_conversation: int,
    conversations: list[str] | None = None,
) -> list[float]:
    """Send ``turns`` questions, ``per_conversation`` per websocket conversation.

    Args:
        settings: The stack's settings.
        questions: Asked in turn.
        turns: How many.
        per_conversation: Turns per websocket conversation.
        conversations: Receives the id of each conversation opened.

    Returns:
        Each turn's milliseconds, from sending the question to the end of the bot's reply.
    """
    url = f"ws://{settings.host}:{settings.web_port}/ws/chat"
    timings: list[float] = []
    while len(timings) < turns:
        async with websockets.connect(url, max_size=2**22) as socket:
            await socket.send(json.dumps({"type": "hello"}))
            session = await _until(socket, "session")
            if conversations is not None:
                conversations.append(str(session["conversation_id"]))
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


async def _timed_turn(socket: websockets.ClientConnection, text: str) -> float:
    started = time.perf_counter()
    await socket.send(json.dumps({"type": "message", "text": text}))
    await _until_turn_done(socket)
    return (time.perf_counter() - started) * 1000


async def _opened(url: str) -> websockets.ClientConnection:
    socket = await websockets.connect(url, max_size=2**22)
    await socket.send(json.dumps({"type": "hello"}))
    await _until(socket, "history")
    return socket


async def long_against_short(
    settings: Settings, questions: list[str], long_turns: int, *, short_per_conversation: int
) -> tuple[list[float], list[float]]:
    """One ``long_turns``-turn conversation, each turn followed by a turn of a short one.

    Returns:
        The long conversation's turn milliseconds and the short conversations' ones.
    """
    url = f"ws://{settings.host}:{settings.web_port}/ws/chat"
    long_ms: list[float] = []
    short_ms: list[float] = []
    long_socket = await _opened(url)
    short_socket: websockets.ClientConnection | None = None
    try:
        for turn in range(long_turns):
            long_ms.append(await _timed_turn(long_socket, questions[turn % len(questions)]))
            if short_socket is None or turn % short_per_conversation == 0:
                if short_socket is not None:
                    await short_socket.close()
                short_socket = await _opened(url)
            text = questions[(turn * 7 + 3) % len(questions)]
            short_ms.append(await _timed_turn(short_socket, text))
    finally:
        await long_socket.close()
        if short_socket is not None:
            await short_socket.close()
    return long_ms, short_ms


async def interleaved_turns(
    settings: Settings,
    questions: list[str],
    turns: int,
    *,
    per_conversation: int,
    knowledge_conversations: list[str],
    greet_conversations: list[str],
) -> tuple[list[float], list[float], list[float]]:
    """Knowledge, websocket greet and REST greet turns, one of each in turn.

    Interleaved, so that load from elsewhere on the machine hits the three alike (a
    ratio of two runs minutes apart on a shared machine means little).

    Returns:
        The milliseconds of each knowledge turn, websocket greet and REST greet.
    """
    url = f"ws://{settings.host}:{settings.web_port}/ws/chat"
    knowledge: list[float] = []
    ws_greet: list[float] = []
    rest_greet: list[float] = []
    question_socket: websockets.ClientConnection | None = None
    greet_socket: websockets.ClientConnection | None = None
    async with httpx.AsyncClient(timeout=30) as client:
        try:
            for turn in range(turns):
                if turn % per_conversation == 0:
                    for socket in (question_socket, greet_socket):
                        if socket is not None:
                            await socket.close()
                    question_socket, knowledge_id = await _opened_with_id(url)
                    greet_socket, greet_id = await _opened_with_id(url)
                    knowledge_conversations.append(knowledge_id)
                    greet_conversations.append(greet_id)
                assert question_socket is not None and greet_socket is not None
                text = questions[turn % len(questions)]
                knowledge.append(await _timed_turn(question_socket, text))
                ws_greet.append(await _timed_turn(greet_socket, "hello"))
                started = time.perf_counter()
                response = await client.post(
                    f"{settings.rasa_url}/webhooks/rest/webhook",
                    json={"sender": f"bench-{uuid.uuid4().hex}", "message": "hello"},
                )
                response.raise_for_status()
                rest_greet.append((time.perf_counter() - started) * 1000)
        finally:
            for socket in (question_socket, greet_socket):
                if socket is not None:
                    await socket.close()
    return knowledge, ws_greet, rest_greet


async def _opened_with_id(url: str) -> tuple[websockets.ClientConnection, str]:
    socket = await websockets.connect(url, max_size=2**22)
    await socket.send(json.dumps({"type": "hello"}))
    session = await _until(socket, "session")
    await _until(socket, "history")
    return socket, str(session["conversation_id"])


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


def first_actions(settings: Settings, conversations: list[str]) -> Counter[str]:
    """Which action Rasa ran first after each customer message, from its trackers.

    Returns:
        How many customer messages in these conversations were answered by each action
        (``action_answer_from_knowledge`` for a knowledge answer).
    """
    assert settings.rasa_token is not None
    found: Counter[str] = Counter()
    with httpx.Client(timeout=30) as client:
        for conversation in conversations:
            tracker = client.get(
                f"{settings.rasa_url}/conversations/{conversation}/tracker",
                params={"token": settings.rasa_token.get_secret_value()},
            ).json()
            events = tracker.get("events", [])
            for position, event in enumerate(events):
                if event.get("event") != "user":
                    continue
                following = next(
                    (
                        later.get("name")
                        for later in events[position + 1 :]
                        if later.get("event") == "action"
                    ),
                    None,
                )
                found[str(following)] += 1
    return found


def stage_breakdown(log_path: Path, conversations: set[str]) -> dict[str, list[float]]:
    """Each stage's milliseconds per turn, from the bot service's ``turn timing`` lines.

    Args:
        log_path: The bot service's log.
        conversations: Only turns of these conversations count.

    Returns:
        Milliseconds per stage name (``total`` and :data:`bot.chat.timing.STAGES`).
    """
    stages: dict[str, list[float]] = {name: [] for name in ("total", *STAGES)}
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        parsed = parse_timing_line(line)
        if parsed is None or parsed[0] not in conversations:
            continue
        for name, value in parsed[1].items():
            stages.setdefault(name, []).append(value)
    return stages


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
    parser.add_argument(
        "--long-conversation",
        type=int,
        default=0,
        metavar="N",
        help="also compare one N-turn conversation with 10-turn ones, turn for turn",
    )
    args = parser.parse_args(argv)

    spec = yaml.safe_load(QUESTIONS.read_text())
    questions = [q for qs in spec["in_domain"].values() for q in qs]
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="concierge-bench-") as tmp:
        settings = isolated_settings(get_settings(), Path(tmp))
        # Timing lines on; no chat rate limit (the benchmark sends turns back to back).
        settings = settings.model_copy(
            update={"turn_timing_log": True, "chat_rate_limit_messages": 0}
        )
        prepare_state(settings, console)
        measured: list[str] = []
        with started_stack(settings, console) as supervisor:
            per = args.per_conversation
            asyncio.run(knowledge_turns(settings, questions, args.warmup, per_conversation=per))
            greet_turns(settings, args.warmup)
            greeted: list[str] = []
            knowledge, ws_greet, greet = asyncio.run(
                interleaved_turns(
                    settings,
                    questions,
                    args.turns,
                    per_conversation=per,
                    knowledge_conversations=measured,
                    greet_conversations=greeted,
                )
            )
            answered_by = first_actions(settings, measured)
            greet_answered_by = first_actions(settings, greeted)
            long_ms: list[float] = []
            short_ms: list[float] = []
            if args.long_conversation:
                long_ms, short_ms = asyncio.run(
                    long_against_short(
                        settings, questions, args.long_conversation, short_per_conversation=10
                    )
                )
            memory = {s.spec.name.replace(" ", "_"): rss_mb(s.pid) for s in supervisor.services}
        settings_log = settings.log_dir / "web.log"
        stages = stage_breakdown(settings_log, set(measured))
        greet_stages = stage_breakdown(settings_log, set(greeted))
    console.print(f"Where a knowledge turn's time goes ({len(stages['total'])} turns, ms):")
    for name, values in stages.items():
        console.print(
            f"  {name:<10} p50 {percentile(values, 0.5):7.1f}   p95 {percentile(values, 0.95):7.1f}"
        )
    p50, greet_p50 = percentile(knowledge, 0.5), percentile(greet, 0.5)
    ws_greet_p50 = percentile(ws_greet, 0.5)
    long_figures = {}
    if long_ms:
        long_figures = {
            "long_conversation_turns": args.long_conversation,
            "long_p50_ms": round(percentile(long_ms, 0.5), 1),
            "long_p95_ms": round(percentile(long_ms, 0.95), 1),
            "short_p50_ms": round(percentile(short_ms, 0.5), 1),
            "short_p95_ms": round(percentile(short_ms, 0.95), 1),
            "long_to_short_p95": round(percentile(long_ms, 0.95) / percentile(short_ms, 0.95), 2),
            "long_last50_p95_ms": round(percentile(long_ms[-50:], 0.95), 1),
        }
    emit(
        {
            **long_figures,
            "benchmark": "turn_latency",
            "turns": args.turns,
            "turns_per_conversation": args.per_conversation,
            "p50_ms": round(p50, 1),
            "p95_ms": round(percentile(knowledge, 0.95), 1),
            "rasa_greet_p50_ms": round(greet_p50, 1),
            "rasa_greet_p95_ms": round(percentile(greet, 0.95), 1),
            "ratio": round(p50 / greet_p50, 2),
            "ws_greet_p50_ms": round(ws_greet_p50, 1),
            "ws_greet_p95_ms": round(percentile(ws_greet, 0.95), 1),
            "ratio_same_path": round(p50 / ws_greet_p50, 2),
            "first_action_after_ws_greet": dict(greet_answered_by),
            "ws_greet_stages_p50_ms": {
                k: round(percentile(v, 0.5), 1) for k, v in greet_stages.items() if v
            },
            "rss_mb": memory,
            "first_action_after_question": dict(answered_by),
            "stages_p50_ms": {k: round(percentile(v, 0.5), 1) for k, v in stages.items() if v},
            "stages_p95_ms": {k: round(percentile(v, 0.95), 1) for k, v in stages.items() if v},
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
