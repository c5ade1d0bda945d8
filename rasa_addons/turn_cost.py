"""Measure where Rasa's time goes in one turn, per pipeline component and policy.

Runs in Rasa's environment (``bench.rasa_cost`` starts it): loads a model the way
``rasa run`` does (with :mod:`rasa_addons.speedups` unless ``--no-speedups``), with the
bounded tracker store on a temporary SQLite file and the given action server, plays
conversations of knowledge questions and greetings, and times every graph node (each
NLU component and each policy), the tracker store, the remote action call and the whole
``handle_message``. Prints one JSON object: milliseconds per turn for each part, for
knowledge turns and greet turns separately.

Usage (from the project root):
    .venv-rasa/bin/python -m rasa_addons.turn_cost MODEL ACTION_URL [--turns 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

QUESTIONS = [
    "how long does delivery take?",
    "can i send back a lamp i bought?",
    "my payment got declined",
    "How does net 30 invoicing work for my company?",
    "what does shipping cost to switzerland",
]


class Clock:
    """Milliseconds per named part, collected for the turn being measured."""

    def __init__(self) -> None:
        self.turn: dict[str, float] = defaultdict(float)

    def timed(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap a synchronous function so its time adds to ``name``."""

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.turn[name] += (time.perf_counter() - started) * 1000

        return wrapper

    def timed_async(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap a coroutine function so its time adds to ``name``."""

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await function(*args, **kwargs)
            finally:
                self.turn[name] += (time.perf_counter() - started) * 1000

        return wrapper


def _quiet() -> None:
    logging.disable(logging.WARNING)
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


async def measure(model: str, action_url: str, turns: int, speedups: bool) -> dict[str, Any]:
    """Play ``turns`` turns of each kind and return the mean milliseconds per part."""
    if speedups:
        from rasa_addons.speedups import install

        install()
    from rasa.core.actions.action import RemoteAction
    from rasa.core.agent import Agent
    from rasa.engine.graph import GraphNode
    from rasa.utils.endpoints import EndpointConfig

    from rasa_addons.tracker_store import BoundedSQLTrackerStore

    clock = Clock()
    node_call = GraphNode.__call__

    def timed_node(self: GraphNode, *inputs: Any) -> Any:
        started = time.perf_counter()
        try:
            return node_call(self, *inputs)
        finally:
            name = self._node_name.removeprefix("run_")
            clock.turn[f"node:{name}"] += (time.perf_counter() - started) * 1000

    GraphNode.__call__ = timed_node  # type: ignore[method-assign]
    RemoteAction.run = clock.timed_async("remote action", RemoteAction.run)  # type: ignore[method-assign]

    agent = Agent.load(model, action_endpoint=EndpointConfig(action_url))
    store = BoundedSQLTrackerStore(
        agent.domain, dialect="sqlite", db=f"{tempfile.mkdtemp()}/tracker.db"
    )
    store.retrieve = clock.timed_async("tracker store", store.retrieve)  # type: ignore[method-assign]
    store.save = clock.timed_async("tracker store", store.save)  # type: ignore[method-assign]
    agent.tracker_store = store
    agent.processor.tracker_store = store

    for number in range(10):  # warm up TensorFlow and the connections
        await agent.handle_text(QUESTIONS[number % len(QUESTIONS)], sender_id="warm-up")
        await agent.handle_text("hello", sender_id="warm-up")

    results: dict[str, Any] = {}
    for kind in ("knowledge", "greet"):
        totals: dict[str, float] = defaultdict(float)
        for number in range(turns):
            clock.turn = defaultdict(float)
            text = QUESTIONS[number % len(QUESTIONS)] if kind == "knowledge" else "hello"
            started = time.perf_counter()
            await agent.handle_text(text, sender_id=f"{kind}-{number // 10}")
            clock.turn["handle_message"] = (time.perf_counter() - started) * 1000
            for name, value in clock.turn.items():
                totals[name] += value
        results[kind] = {name: round(value / turns, 2) for name, value in sorted(totals.items())}
    return {"model": model, "speedups": speedups, "turns": turns, "ms_per_turn": results}


def main(argv: list[str] | None = None) -> int:
    """Measure and print the JSON object."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model")
    parser.add_argument("action_url")
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--no-speedups", action="store_true")
    args = parser.parse_args(argv)
    _quiet()
    result = asyncio.run(
        measure(args.model, args.action_url, args.turns, speedups=not args.no_speedups)
    )
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
