"""Run in Rasa's environment (.venv-rasa): check rasa_addons.speedups against Rasa's own code.

Prints JSON: whether validation and event lookup answer as Rasa does, and how long one
action-response validation takes before and after.

Usage (from the project root):
    .venv-rasa/bin/python tests/helpers/rasa_speedups_probe.py
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction
from rasa.shared.core.events import Event

GOOD = {
    "events": [
        {"event": "slot", "name": "kb_attempts", "value": 1.0, "timestamp": None},
        {"event": "followup", "name": "action_handoff_to_human"},
    ],
    "responses": [{"text": "hello", "custom": {"citation": {"article_id": "a"}}}],
}
BAD = {"events": [{"event": "slot"}], "responses": "not a list"}
# Each wrong in another way; the fast check must send all of them to the whole schema.
BAD_MORE = [
    {"events": [{"event": "slot"}], "responses": []},
    {"events": [{"event": "no_such_event"}], "responses": []},
    {"events": [{"name": "x"}], "responses": []},
    {"events": ["slot"], "responses": []},
    {"events": [{"event": 3}], "responses": []},
    {"events": [{"event": "slot", "name": "a", "value": 1, "timestamp": "noon"}]},
    {"events": [{"event": "user", "text": 5}]},
    {"events": [{"event": "action", "name": "x"}, {"event": "bot", "text": []}]},
    {"events": {"event": "slot"}},
    {"events": [], "responses": [1]},
    [],
]
GOOD_MORE = [
    {},
    {"events": []},
    {"events": None, "responses": []},
    {"events": [{"event": "user", "text": "hi", "parse_data": {"intent": {"name": "greet"}}}]},
    {"events": [{"event": "action", "name": "action_listen", "policy": None}]},
    {"events": [{"event": "session_started"}, {"event": "pause"}, {"event": "resume"}]},
]
NAMES = ["slot", "user", "bot", "action", "session_started", "pause", "resume", "followup"]


def outcome(action: RemoteAction, result: dict[str, Any]) -> str:
    try:
        action._validate_action_result(result)
    except ValidationError as error:
        return f"invalid: {error.message}"
    return "valid"


def milliseconds(action: RemoteAction, runs: int = 20) -> float:
    started = time.perf_counter()
    for _ in range(runs):
        action._validate_action_result(GOOD)
    return (time.perf_counter() - started) * 1000 / runs


def main() -> dict[str, Any]:
    action = RemoteAction("action_answer_from_knowledge", None)
    before = {
        "good": outcome(action, GOOD),
        "bad": outcome(action, BAD),
        "more": [outcome(action, result) for result in BAD_MORE + GOOD_MORE],
        "classes": [Event.resolve_by_type(name).__name__ for name in NAMES],
        "ms": milliseconds(action, 5),
    }
    from rasa_addons.speedups import install

    install()
    install()  # idempotent
    after = {
        "good": outcome(action, GOOD),
        "bad": outcome(action, BAD),
        "more": [outcome(action, result) for result in BAD_MORE + GOOD_MORE],
        "classes": [Event.resolve_by_type(name).__name__ for name in NAMES],
        "ms": milliseconds(action),
    }
    try:
        Event.resolve_by_type("no_such_event")
        unknown = "resolved"
    except ValueError:
        unknown = "ValueError"
    from rasa_addons.speedups import json_dumps

    encoded = [
        json.loads(json_dumps(value)) == value
        for value in (GOOD, BAD_MORE, GOOD_MORE, {"text": "é/\u2028", "big": 10**30, "t": 1e-7})
    ]
    nan = json.loads(json_dumps({"v": float("nan")}))["v"]
    nan = "NaN" if nan != nan else repr(nan)
    return {"before": before, "after": after, "unknown": unknown, "encoded": encoded, "nan": nan}


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main()) + "\n")
