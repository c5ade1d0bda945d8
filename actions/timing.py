"""Actions report their own durations to the bot service (``CONCIERGE_TURN_TIMING_LOG``).

With the setting on, an action that measures itself adds
``{"concierge_timing": {"action": name, "action_ms": …, …}}`` to the ``custom`` part of
the last message it sends (or sends that alone when it sent nothing). Rasa passes it
through its REST channel; the bot service's Rasa client takes it out of the replies
(it is never shown or stored as a message) and subtracts ``action_ms`` from the time
the REST call took, which leaves Rasa's own share of the turn (see
:mod:`bot.chat.timing`).

``action_ms`` is measured inside ``Action.run``: from its first line to the report.
rasa-sdk's own work around it (parsing the request's tracker and domain, writing the
response) is outside it, and so is counted as Rasa's share by the bot service.
"""

from __future__ import annotations

import time
from typing import Any

from rasa_sdk.executor import CollectingDispatcher

from bot.config import get_settings

TIMING_KEY = "concierge_timing"


def timing_enabled() -> bool:
    """Whether actions report their durations (``CONCIERGE_TURN_TIMING_LOG=true``)."""
    return get_settings().turn_timing_log


def report_timing(
    dispatcher: CollectingDispatcher,
    *,
    action: str,
    started: float,
    stages_ms: dict[str, float] | None = None,
) -> None:
    """Attach this action's durations to its last message (no-op unless timing is on).

    Args:
        dispatcher: The action's dispatcher, after its messages were sent.
        action: The action's name.
        started: ``time.perf_counter()`` at the start of ``run``.
        stages_ms: Named parts of the action, in milliseconds (``encode_ms``, ``search_ms``).
    """
    if not timing_enabled():
        return
    report: dict[str, Any] = {
        "action": action,
        "action_ms": round((time.perf_counter() - started) * 1000, 2),
        **{name: round(value, 2) for name, value in (stages_ms or {}).items()},
    }
    if dispatcher.messages:
        last = dispatcher.messages[-1]
        last["custom"] = {**(last.get("custom") or {}), TIMING_KEY: report}
    else:
        dispatcher.utter_message(json_message={TIMING_KEY: report})
