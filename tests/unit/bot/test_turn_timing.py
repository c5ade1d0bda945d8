"""Per-turn timing: stage clocks, the log line, and action reports taken out of Rasa's replies."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.chat.service import ChatService
from bot.chat.timing import STAGES, TurnTiming, parse_timing_line
from bot.conversations.service import history, start_conversation
from bot.rasa_client import TIMING_KEY, parse_replies

REPORT = {"action": "action_answer_from_knowledge", "action_ms": 20.0, "encode_ms": 1.5}


def test_action_reports_are_taken_out_of_the_replies() -> None:
    timings: list[dict[str, Any]] = []
    data = [
        {"text": "Standard delivery takes 3-5 days.", "buttons": []},
        {"custom": {"citation": {"article_id": "a", "title": "A"}, TIMING_KEY: REPORT}},
        {"text": "Anything else?"},
        {"custom": {TIMING_KEY: {"action": "action_other", "action_ms": 3}}},
    ]

    replies = parse_replies(data, timings=timings)

    assert [(r.text, r.citation and r.citation.article_id, r.custom) for r in replies] == [
        ("Standard delivery takes 3-5 days.", "a", None),
        ("Anything else?", None, None),
    ]
    assert timings == [REPORT, {"action": "action_other", "action_ms": 3}]
    # Without a collector the reports are still never shown.
    assert len(parse_replies(data)) == 2


def test_rasa_share_is_the_rest_call_minus_the_actions_own_time() -> None:
    timing = TurnTiming("c-1")
    timing.stages_ms.update({"admission": 4.0, "rasa": 50.0, "store": 3.0})
    timing.action_reports.append(REPORT)

    summary = timing.summary()

    assert summary["rasa"] == pytest.approx(30.0)
    assert summary["action"] == pytest.approx(20.0)
    assert summary["encode"] == pytest.approx(1.5)
    assert summary["search"] == 0.0
    assert summary["total"] >= 0.0
    assert set(STAGES) <= set(summary)


def test_the_log_line_reads_back(caplog: pytest.LogCaptureFixture) -> None:
    timing = TurnTiming("c-42")
    timing.stages_ms.update({"admission": 4.0, "rasa": 50.0, "store": 3.0})
    timing.action_reports.append(REPORT)
    with caplog.at_level(logging.INFO, logger="bot.chat.timing"):
        timing.log(message_id=7)

    line = caplog.records[-1].getMessage()
    assert "conversation=c-42 message=7" in line
    parsed = parse_timing_line(f"2026-11-24 10:00:00 INFO bot.chat.timing: {line}")
    assert parsed is not None
    conversation, stages = parsed
    assert conversation == "c-42"
    assert stages["rasa"] == pytest.approx(30.0)
    assert stages["action"] == pytest.approx(20.0)
    assert parse_timing_line("websocket joined conversation=c-42 new=True") is None


async def test_a_turn_logs_its_stages_only_when_asked(
    session_factory: sessionmaker[Session], rasa: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with session_factory() as session:
        conversation, _ = start_conversation(session, channel="webchat")
    rasa.replies["how long does delivery take?"] = [
        {"text": "3-5 days."},
        {"custom": {TIMING_KEY: REPORT}},
    ]
    quiet = ChatService(
        session_factory=session_factory, rasa_client=rasa.client(), max_message_chars=100
    )
    timed = ChatService(
        session_factory=session_factory,
        rasa_client=rasa.client(),
        max_message_chars=100,
        turn_timing_log=True,
    )

    with caplog.at_level(logging.INFO, logger="bot.chat.timing"):
        await quiet.handle_customer_message(
            conversation_id=conversation.id, text="how long does delivery take?"
        )
        assert not caplog.records
        replies = await timed.handle_customer_message(
            conversation_id=conversation.id, text="how long does delivery take?"
        )

    assert [reply.text for reply in replies] == ["3-5 days."]
    parsed = parse_timing_line(caplog.records[-1].getMessage())
    assert parsed is not None and parsed[0] == conversation.id
    stages = parsed[1]
    assert stages["action"] == pytest.approx(20.0)
    assert stages["admission"] > 0 and stages["store"] > 0
    with session_factory() as session:
        texts = [m.text for m in history(session, conversation_id=conversation.id)]
    assert texts.count("3-5 days.") == 2  # the timing report was never stored
