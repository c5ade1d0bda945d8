"""The Redis broker against a real redis-server: events cross between two replicas."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import pytest
import redis

from bot.realtime.broker import DESK_TOPIC, RedisBroker, conversation_topic, create_broker
from tests.helpers.redis_server import running_redis


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway redis-server on 127.0.0.1 (no persistence)."""
    with running_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


async def _next(events: object) -> dict:
    return await asyncio.wait_for(anext(events), 5)  # type: ignore[call-overload]


async def test_an_event_published_by_one_replica_reaches_the_other(redis_url: str) -> None:
    replica_a, replica_b = create_broker(redis_url), create_broker(redis_url)
    assert isinstance(replica_a, RedisBroker)
    topic = conversation_topic("c-redis")
    try:
        async with replica_b.subscribe(topic) as on_b, replica_a.subscribe(DESK_TOPIC) as desk_a:
            await asyncio.sleep(0.2)  # the SUBSCRIBE reaches Redis
            await replica_a.publish(topic, {"type": "message", "text": "from replica A"})
            await replica_b.publish(DESK_TOPIC, {"type": "ticket.created", "team_id": 1})

            assert await _next(on_b) == {"type": "message", "text": "from replica A"}
            assert await _next(desk_a) == {"type": "ticket.created", "team_id": 1}
    finally:
        await replica_a.aclose()
        await replica_b.aclose()


async def test_other_topics_and_garbage_are_not_delivered(redis_url: str) -> None:
    broker = create_broker(redis_url)
    raw = redis.Redis.from_url(redis_url)
    try:
        async with broker.subscribe(conversation_topic("mine")) as mine:
            await asyncio.sleep(0.2)
            await broker.publish(conversation_topic("someone-else"), {"n": 0})
            raw.publish("concierge:" + conversation_topic("mine"), b"\xff not json")
            await broker.publish(conversation_topic("mine"), {"n": 1})

            assert await _next(mine) == {"n": 1}
    finally:
        await broker.aclose()


async def test_hundreds_of_open_chats_share_a_few_redis_connections(redis_url: str) -> None:
    broker = create_broker(redis_url)
    raw = redis.Redis.from_url(redis_url)
    topics = [conversation_topic(f"chat-{n}") for n in range(300)]
    try:
        async with contextlib.AsyncExitStack() as stack:
            streams = [await stack.enter_async_context(broker.subscribe(t)) for t in topics]
            await asyncio.sleep(0.3)
            for number, topic in enumerate(topics):
                await broker.publish(topic, {"n": number})
            received = [await _next(stream) for stream in streams]
            clients = len(raw.client_list()) - 1  # minus this probe
        assert received == [{"n": number} for number in range(len(topics))]
        assert clients <= 4, f"{clients} Redis connections for 300 open chats"
    finally:
        await broker.aclose()
