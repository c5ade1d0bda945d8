"""The in-process broker, business hours and the extractive ticket summary."""

from __future__ import annotations

import asyncio
import datetime as dt

from bot.handoff.availability import (
    DEFAULT_BUSINESS_HOURS,
    Availability,
    describe_wait,
    within_hours,
)
from bot.handoff.summary import summarize
from bot.realtime.broker import InProcessBroker, conversation_topic


async def test_subscribers_get_events_of_their_topic_only() -> None:
    broker = InProcessBroker()
    async with (
        broker.subscribe(conversation_topic("a")) as events_a,
        broker.subscribe(conversation_topic("b")) as events_b,
    ):
        await broker.publish(conversation_topic("a"), {"n": 1})
        await broker.publish(conversation_topic("b"), {"n": 2})
        assert await asyncio.wait_for(anext(events_a), 1) == {"n": 1}
        assert await asyncio.wait_for(anext(events_b), 1) == {"n": 2}
        assert broker.subscriber_count(conversation_topic("a")) == 1
    assert broker.subscriber_count(conversation_topic("a")) == 0
    await broker.publish(conversation_topic("a"), {"n": 3})  # nobody listens: no error


def test_business_hours() -> None:
    berlin_monday_noon = dt.datetime(2026, 11, 23, 11, 0, tzinfo=dt.UTC)  # 12:00 CET
    saturday_night = dt.datetime(2026, 11, 28, 22, 0, tzinfo=dt.UTC)

    assert within_hours(DEFAULT_BUSINESS_HOURS, berlin_monday_noon) == (True, None)
    open_now, next_open = within_hours(DEFAULT_BUSINESS_HOURS, saturday_night)
    assert open_now is False and next_open is not None
    assert (next_open.strftime("%a %H:%M"), str(next_open.tzinfo)) == ("Mon 08:00", "Europe/Berlin")
    assert within_hours(None, saturday_night) == (True, None)
    assert within_hours({"timezone": "Nowhere/Else", "days": {}}, saturday_night) == (False, None)


def test_the_wait_message_is_honest() -> None:
    later = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)
    assert "online" in describe_wait(Availability(open_now=True, agents_online=2, next_open=None))
    assert "Monday at 08:00" in describe_wait(
        Availability(open_now=False, agents_online=0, next_open=later)
    )
    assert "signed in" in describe_wait(
        Availability(open_now=True, agents_online=0, next_open=None)
    )


def test_summary_quotes_the_customer_and_what_the_bot_tried() -> None:
    summary = summarize(
        customer_texts=["hi", "my lamp arrived broken", "talk to a person"],
        reason="customer asked for a human",
        context={
            "knowledge": {
                "attempts": [{"outcome": "unknown"}, {"outcome": "answered"}],
                "articles_answered": ["returns-damaged-items"],
                "articles_offered": ["returns-start-a-return"],
            }
        },
    )
    lines = summary.splitlines()
    assert 2 <= len(lines) <= 3
    assert "my lamp arrived broken" in lines[0]
    assert "returns-damaged-items" in lines[1] and "no answer 1×" in lines[1]
    assert "customer asked for a human" in summary


def test_summary_of_a_silent_customer_and_a_huge_message() -> None:
    assert summarize(customer_texts=[], reason="x", context={}).startswith("Customer has not")
    huge = summarize(customer_texts=["a" * 100_000], reason="x", context={})
    assert len(huge) < 600


def test_summary_punctuation_when_the_bot_tried_nothing() -> None:
    summary = summarize(customer_texts=["refund please"], reason="asked", context={})
    assert "Bot has not tried an article. Handed over: asked." in summary
    assert ".." not in summary
