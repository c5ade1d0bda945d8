"""Where one customer turn's time went, for the optional per-turn timing log line.

With ``CONCIERGE_TURN_TIMING_LOG=true`` the turn handler (:mod:`bot.chat.service`)
times its own stages and logs one line per turn forwarded to Rasa::

    turn timing conversation=<id> message=<id> total_ms=… admission_ms=… rasa_ms=…
    action_ms=… encode_ms=… search_ms=… store_ms=… other_ms=…

* ``admission_ms``: cleaning the text and the one transaction that stores the customer's
  message and decides who answers (including the hop to the database thread);
* ``rasa_ms``: the REST call to Rasa minus the time actions reported for themselves:
  Rasa's NLU and policies, its tracker store and lock, and the remote-action round trip
  (sending the tracker and domain, rasa-sdk's request handling) outside the actions' own
  ``run``;
* ``action_ms``: the custom actions' own ``run`` time, as they report it
  (:mod:`actions.timing`), of which ``encode_ms`` (embedding the question) and
  ``search_ms`` (faiss, ranking, audience rules) for knowledge answers;
* ``store_ms``: the one commit that stores Rasa's replies;
* ``other_ms``: the rest (frustration check, resuming Rasa, publishing to the desk).

``bench.turn_latency`` turns the setting on in its private stack and reads these lines.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

STAGES = ("admission", "rasa", "action", "encode", "search", "store", "other")
_ACTION_STAGES = ("encode_ms", "search_ms")
_LINE = re.compile(r"turn timing conversation=(?P<conversation>\S+) message=\S+ (?P<fields>.*)")


@dataclass
class TurnTiming:
    """Stage clocks for one customer turn (milliseconds)."""

    conversation_id: str
    started: float = field(default_factory=time.perf_counter)
    stages_ms: dict[str, float] = field(default_factory=dict)
    action_reports: list[dict[str, Any]] = field(default_factory=list)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Add the block's duration to stage ``name``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            self.stages_ms[name] = self.stages_ms.get(name, 0.0) + elapsed

    def summary(self) -> dict[str, float]:
        """Every stage in milliseconds, plus ``total``; ``other`` is the unaccounted rest."""
        total = (time.perf_counter() - self.started) * 1000
        result = {name: 0.0 for name in STAGES}
        result.update(self.stages_ms)
        action = sum(_number(report.get("action_ms")) for report in self.action_reports)
        for key in _ACTION_STAGES:
            result[key.removesuffix("_ms")] = sum(
                _number(report.get(key)) for report in self.action_reports
            )
        result["action"] = action
        # The "rasa" stage timed the whole REST call; the actions' own time is theirs.
        result["rasa"] = max(0.0, result["rasa"] - action)
        accounted = sum(result[name] for name in ("admission", "rasa", "action", "store"))
        result["other"] = max(0.0, total - accounted)
        result["total"] = total
        return result

    def log(self, *, message_id: int | None) -> None:
        """Write the turn's timing line (see the module docstring)."""
        summary = self.summary()
        fields = " ".join(f"{name}_ms={summary[name]:.1f}" for name in ("total", *STAGES))
        actions = ",".join(str(report.get("action")) for report in self.action_reports) or "-"
        logger.info(
            "turn timing conversation=%s message=%s %s actions=%s",
            self.conversation_id,
            message_id,
            fields,
            actions,
        )


def parse_timing_line(line: str) -> tuple[str, dict[str, float]] | None:
    """Read one ``turn timing`` log line back.

    Args:
        line: A line of the bot service's log.

    Returns:
        The conversation id and each ``<stage>_ms`` value by stage name, or ``None``
        when the line is not a timing line.
    """
    match = _LINE.search(line)
    if match is None:
        return None
    values: dict[str, float] = {}
    for part in match.group("fields").split():
        name, _, value = part.partition("=")
        if name.endswith("_ms"):
            values[name.removesuffix("_ms")] = float(value)
    return match.group("conversation"), values


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


@contextmanager
def timed_stage(timing: TurnTiming | None, name: str) -> Iterator[None]:
    """``timing.stage(name)``, or nothing when turn timing is off."""
    if timing is None:
        yield
        return
    with timing.stage(name):
        yield
