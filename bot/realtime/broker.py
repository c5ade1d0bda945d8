"""Deliver events to open pages: in-process by default, Redis pub/sub between replicas.

Topics are plain strings: :func:`conversation_topic` for a customer's open chat pages,
:data:`DESK_TOPIC` for every signed-in agent's live channel (each subscriber filters by
its teams). Events are JSON-ready dicts. Delivery is best effort: a page that is closed
misses the event and reads the stored messages when it comes back, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

logger = logging.getLogger(__name__)

DESK_TOPIC = "desk"
SUBSCRIBER_QUEUE_SIZE = 1000


def conversation_topic(conversation_id: str) -> str:
    """The topic a customer's chat pages listen on."""
    return f"conversation.{conversation_id}"


Event = dict[str, Any]


class Broker(Protocol):
    """Publish/subscribe between the parts of the bot service (and its replicas)."""

    async def publish(self, topic: str, event: Event) -> None:
        """Send ``event`` to every current subscriber of ``topic`` (in every replica)."""
        ...

    def subscribe(self, topic: str) -> contextlib.AbstractAsyncContextManager[AsyncIterator[Event]]:
        """Listen to ``topic`` while the context is open."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class InProcessBroker:
    """Delivery inside one process: enough for one bot-service replica."""

    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[Event]]] = defaultdict(set)

    async def publish(self, topic: str, event: Event) -> None:
        """Put the event on every subscriber's queue (dropping it for a full, stuck one)."""
        for queue in list(self._queues.get(topic, ())):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                logger.warning("subscriber of %s is not reading; event dropped", topic)

    @asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[AsyncIterator[Event]]:
        """Yield an async iterator of the topic's events until the context closes."""
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=SUBSCRIBER_QUEUE_SIZE)
        self._queues[topic].add(queue)

        async def events() -> AsyncIterator[Event]:
            while True:
                yield await queue.get()

        try:
            yield events()
        finally:
            self._queues[topic].discard(queue)
            if not self._queues[topic]:
                del self._queues[topic]

    def subscriber_count(self, topic: str) -> int:
        """How many subscribers a topic has (for tests and health)."""
        return len(self._queues.get(topic, ()))

    async def aclose(self) -> None:
        """Nothing to release."""


class RedisBroker:
    """Delivery through Redis pub/sub, so every replica's pages get every event."""

    def __init__(self, url: str, *, prefix: str = "concierge:") -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url)
        self._prefix = prefix

    async def publish(self, topic: str, event: Event) -> None:
        """Publish the event as JSON on ``prefix + topic``."""
        await self._redis.publish(self._prefix + topic, json.dumps(event, default=str))

    @asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[AsyncIterator[Event]]:
        """Yield an async iterator of the topic's events until the context closes."""
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(self._prefix + topic)

        async def events() -> AsyncIterator[Event]:
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                try:
                    yield json.loads(message["data"])
                except (ValueError, TypeError):
                    logger.warning("ignoring a malformed event on %s", topic)

        try:
            yield events()
        finally:
            with contextlib.suppress(Exception):
                await pubsub.unsubscribe()
                await pubsub.aclose()

    async def aclose(self) -> None:
        """Close the Redis connection pool."""
        await self._redis.aclose()


def create_broker(redis_url: str) -> Broker:
    """The broker the settings ask for: Redis when a URL is set, otherwise in-process."""
    return RedisBroker(redis_url) if redis_url else InProcessBroker()
