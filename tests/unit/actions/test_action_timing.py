"""Actions report their own durations only when the turn timing log is on."""

from __future__ import annotations

import time

import pytest
from rasa_sdk.executor import CollectingDispatcher

from actions import timing
from bot.config import Settings


def _settings(monkeypatch: pytest.MonkeyPatch, *, enabled: bool) -> None:
    monkeypatch.setattr(timing, "get_settings", lambda: Settings(turn_timing_log=enabled))


def test_no_report_unless_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    _settings(monkeypatch, enabled=False)
    dispatcher = CollectingDispatcher()
    dispatcher.utter_message(text="hi")
    timing.report_timing(dispatcher, action="a", started=time.perf_counter())
    assert dispatcher.messages[0]["custom"] == {}


def test_the_report_joins_the_last_message(monkeypatch: pytest.MonkeyPatch) -> None:
    _settings(monkeypatch, enabled=True)
    dispatcher = CollectingDispatcher()
    dispatcher.utter_message(text="answer", json_message={"citation": {"article_id": "x"}})
    timing.report_timing(
        dispatcher, action="a", started=time.perf_counter(), stages_ms={"encode_ms": 1.234}
    )
    custom = dispatcher.messages[0]["custom"]
    assert custom["citation"] == {"article_id": "x"}
    assert custom[timing.TIMING_KEY]["action"] == "a"
    assert custom[timing.TIMING_KEY]["encode_ms"] == 1.23
    assert custom[timing.TIMING_KEY]["action_ms"] >= 0


def test_an_action_that_said_nothing_sends_the_report_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _settings(monkeypatch, enabled=True)
    dispatcher = CollectingDispatcher()
    timing.report_timing(dispatcher, action="a", started=time.perf_counter())
    assert list(dispatcher.messages[0]["custom"]) == [timing.TIMING_KEY]
