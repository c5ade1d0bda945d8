"""Throughput under load: many concurrent web-chat conversations on a private loopback stack.

Starts a private stack (``bot.ops.stack.started_stack``: Rasa, action server, bot service,
and in the ``best`` profile Redis) on free 127.0.0.1 ports, then runs ``--conversations``
asyncio websocket clients for ``--warmup`` seconds (not counted) and ``--seconds`` (counted).
Each client plays conversations of ten turns, one turn at a time (it sends the next
message when the bot's answer is complete, no think time), and opens a new conversation
after ten:

    hello · 3 knowledge questions · an order-number claim · 3 questions · thanks · a question

so seven turns in ten (70 %) are knowledge questions, taken in turn from the demo
questions (``bench/data/demo_kb_questions.yml``, in-domain only, so that no two "don't
know" answers in a row hand a conversation to a person).

Reports turns per second, p50/p95/p99 of a turn (message sent → the bot's answer complete),
errors (error frames, polite failure sentences, turns over 60 s, dropped connections),
the mix actually sent, and each process's CPU (share of one core over the counted window)
and resident memory (its whole process tree), read from ``/proc``; the load client's own
CPU is reported too, since it shares the machine. The last line is one JSON object.

The chat rate limit is off in these stacks (each client sends back to back, faster than
the limit allows one person). Loopback only; at most 1,000 conversations and 15 minutes.

Usage:
    python -m bench.load [--conversations 200] [--seconds 180] [--profile default|best]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets
import yaml
from rich.console import Console

from bench.common import emit, percentile
from bot.chat import messages
from bot.config import Settings, get_settings
from bot.ops.profiles import PROFILES, apply_profile
from bot.ops.setup import prepare_state
from bot.ops.stack import isolated_settings, started_stack
from bot.ops.supervisor import Supervisor

QUESTIONS = Path(__file__).resolve().parent / "data" / "demo_kb_questions.yml"
MAX_CONVERSATIONS = 1000
MAX_SECONDS = 900
TURN_TIMEOUT_SECONDS = 60.0
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
# One conversation: (kind, text or None for the next knowledge question).
SCRIPT: list[tuple[str, str | None]] = [
    ("greet", "hello"),
    ("knowledge", None),
    ("knowledge", None),
    ("knowledge", None),
    ("identity", "my order is ORD-100231"),
    ("knowledge", None),
    ("knowledge", None),
    ("knowledge", None),
    ("thanks", "thanks"),
    ("knowledge", None),
]
FAILURE_SENTENCES = frozenset(
    {messages.RASA_UNAVAILABLE, messages.NO_REPLY, messages.UNEXPECTED_ERROR}
)


@dataclass
class Results:
    """What the clients saw."""

    latencies_ms: list[float] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    cited: int = 0
    counting: bool = False

    def record(self, kind: str, milliseconds: float, *, cited: bool) -> None:
        """Count one completed turn if the counted window is open."""
        if not self.counting:
            return
        self.latencies_ms.append(milliseconds)
        self.kinds[kind] += 1
        self.cited += int(cited)

    def error(self, kind: str) -> None:
        """Count one failed turn if the counted window is open."""
        if self.counting:
            self.errors[kind] += 1


class TurnFailedError(Exception):
    """A turn ended in an error frame, a failure sentence or a timeout."""


async def _frame(socket: websockets.ClientConnection) -> dict[str, Any]:
    raw = await asyncio.wait_for(socket.recv(), timeout=TURN_TIMEOUT_SECONDS)
    return dict(json.loads(raw))


async def _turn(socket: websockets.ClientConnection, text: str) -> bool:
    """Send one message; wait for the end of the answer. Returns whether it cited an article."""
    await socket.send(json.dumps({"type": "message", "text": text}))
    replied, cited = False, False
    while True:
        frame = await _frame(socket)
        kind = frame.get("type")
        if kind == "error":
            raise TurnFailedError("error frame")
        if kind == "message" and frame.get("role") in {"bot", "system"}:
            if frame.get("text") in FAILURE_SENTENCES:
                raise TurnFailedError("failure sentence")
            replied = True
            cited = cited or bool(frame.get("citation"))
        elif kind == "typing" and frame.get("on") is False and replied:
            return cited


async def client(
    url: str, questions: list[str], offset: int, deadline: float, results: Results
) -> None:
    """Play ten-turn conversations until ``deadline``."""
    asked = offset
    while time.monotonic() < deadline:
        try:
            async with websockets.connect(url, max_size=2**22, open_timeout=30) as socket:
                await socket.send(json.dumps({"type": "hello"}))
                while (await _frame(socket)).get("type") != "history":
                    pass
                for kind, text in SCRIPT:
                    if time.monotonic() >= deadline:
                        return
                    if text is None:
                        text = questions[asked % len(questions)]
                        asked += 1
                    started = time.monotonic()
                    try:
                        cited = await _turn(socket, text)
                    except (TimeoutError, TurnFailedError) as error:
                        results.error("timeout" if isinstance(error, TimeoutError) else str(error))
                        break
                    if time.monotonic() <= deadline:
                        results.record(kind, (time.monotonic() - started) * 1000, cited=cited)
        except (OSError, websockets.WebSocketException, TimeoutError):
            results.error("connection")
            await asyncio.sleep(0.5)


# -- processes: CPU and memory from /proc ---------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                found.extend(_tree(int(child)))
    return found


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its descendants (from ``/proc``)."""
    total = 0
    for process in _tree(pid):
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{process}/stat").read_text()
            fields = stat[stat.rfind(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants, in MB."""
    total_kb = 0
    for process in _tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{process}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
    return round(total_kb / 1024, 1)


def _processes(supervisor: Supervisor) -> dict[str, int]:
    found = {s.spec.name.replace(" ", "_"): s.pid for s in supervisor.services}
    found["load_client"] = os.getpid()
    return found


async def _sample_memory(pids: dict[str, int], peaks: dict[str, float]) -> None:
    while True:
        for name, pid in pids.items():
            rss = tree_rss_mb(pid) if name != "load_client" else _own_rss_mb()
            peaks[name] = max(peaks.get(name, 0.0), rss)
        await asyncio.sleep(5)


def _own_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


async def run_load(
    settings: Settings,
    supervisor: Supervisor,
    questions: list[str],
    *,
    conversations: int,
    warmup: float,
    seconds: float,
) -> tuple[Results, dict[str, dict[str, float]]]:
    """Run the clients; return what they saw and each process's CPU and memory."""
    url = f"ws://{settings.host}:{settings.web_port}/ws/chat"
    results = Results()
    pids = _processes(supervisor)
    peaks: dict[str, float] = {}
    sampler = asyncio.create_task(_sample_memory(pids, peaks))
    deadline = time.monotonic() + warmup + seconds
    spread = max(1, len(questions) // max(1, conversations))
    tasks = [
        asyncio.create_task(client(url, questions, number * spread, deadline, results))
        for number in range(conversations)
    ]
    await asyncio.sleep(warmup)
    cpu_before = {
        name: _own_cpu_seconds() if name == "load_client" else tree_cpu_seconds(pid)
        for name, pid in pids.items()
    }
    started = time.monotonic()
    results.counting = True
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))
    results.counting = False
    wall = time.monotonic() - started
    cpu_after = {
        name: _own_cpu_seconds() if name == "load_client" else tree_cpu_seconds(pid)
        for name, pid in pids.items()
    }
    memory = {
        name: _own_rss_mb() if name == "load_client" else tree_rss_mb(pid)
        for name, pid in pids.items()
    }
    for task in tasks:
        task.cancel()
    sampler.cancel()
    await asyncio.gather(*tasks, sampler, return_exceptions=True)
    processes = {
        name: {
            "cpu_percent": round(100 * (cpu_after[name] - cpu_before[name]) / wall, 1),
            "rss_mb": memory[name],
            "rss_peak_mb": max(peaks.get(name, 0.0), memory[name]),
        }
        for name in pids
    }
    return results, processes


def _bounded(limit: int, what: str) -> Any:
    def parse(value: str) -> int:
        number = int(value)
        if not 1 <= number <= limit:
            raise argparse.ArgumentTypeError(f"{what} must be between 1 and {limit}")
        return number

    return parse


def create_argument_parser() -> argparse.ArgumentParser:
    """Build the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--conversations", type=_bounded(MAX_CONVERSATIONS, "--conversations"), default=200
    )
    parser.add_argument("--seconds", type=_bounded(MAX_SECONDS, "--seconds"), default=180)
    parser.add_argument("--warmup", type=_bounded(120, "--warmup"), default=15)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="default")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its JSON line."""
    args = create_argument_parser().parse_args(argv)
    spec = yaml.safe_load(QUESTIONS.read_text())
    questions = [q for qs in spec["in_domain"].values() for q in qs]
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="concierge-load-") as tmp:
        settings = isolated_settings(get_settings(), Path(tmp))
        settings = apply_profile(settings, args.profile).model_copy(
            update={"chat_rate_limit_messages": 0}
        )
        if settings.host not in LOOPBACK:
            raise SystemExit(f"refusing to load {settings.host}: loopback addresses only")
        prepare_state(settings, console)
        with started_stack(settings, console) as supervisor:
            console.print(
                f"Load: {args.conversations} conversations, {args.warmup} s warm-up, "
                f"{args.seconds} s counted, profile {args.profile}…"
            )
            results, processes = asyncio.run(
                run_load(
                    settings,
                    supervisor,
                    questions,
                    conversations=args.conversations,
                    warmup=args.warmup,
                    seconds=args.seconds,
                )
            )
    return report(args, results, processes, console)


def report(
    args: argparse.Namespace,
    results: Results,
    processes: dict[str, dict[str, float]],
    console: Console,
) -> int:
    """Print the figures and the JSON line."""
    turns = len(results.latencies_ms)
    knowledge = results.kinds["knowledge"]
    figures: dict[str, Any] = {
        "benchmark": "load",
        "profile": args.profile,
        "conversations": args.conversations,
        "seconds": args.seconds,
        "turns": turns,
        "turns_per_s": round(turns / args.seconds, 1),
        "p50_ms": round(percentile(results.latencies_ms, 0.5), 1),
        "p95_ms": round(percentile(results.latencies_ms, 0.95), 1),
        "p99_ms": round(percentile(results.latencies_ms, 0.99), 1),
        "errors": sum(results.errors.values()),
        "error_kinds": dict(results.errors),
        "mix": dict(results.kinds),
        "knowledge_share": round(knowledge / turns, 3) if turns else 0.0,
        "answers_with_citation": results.cited,
        "processes": processes,
        "cpu_percent_total": round(sum(p["cpu_percent"] for p in processes.values()), 1),
    }
    console.print(
        f"{turns} turns in {args.seconds} s: {figures['turns_per_s']} turns/s; "
        f"p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms, p99 {figures['p99_ms']} ms; "
        f"errors {figures['errors']} {dict(results.errors) or ''}"
    )
    console.print(f"mix {dict(results.kinds)} (knowledge {figures['knowledge_share']:.0%})")
    for name, figures_of in processes.items():
        console.print(
            f"  {name:<14} CPU {figures_of['cpu_percent']:6.1f} %   "
            f"RSS {figures_of['rss_mb']:7.1f} MB (peak {figures_of['rss_peak_mb']:.1f})"
        )
    emit(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
