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
    """Delivery through Redis pub/sub, so every replica's pages get every event.

    One Redis connection per process listens for every topic that has a local
    subscriber (subscribed on first use, unsubscribed when the last one leaves), and a
    reader task hands each event to the local subscribers; publishing uses the client's
    pool. So a replica with thousands of open chats holds two or three Redis
    connections, not one per chat.
    """

    def __init__(self, url: str, *, prefix: str = "concierge:") -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url)
        self._prefix = prefix
        self._local = InProcessBroker()
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._topics: dict[str, int] = defaultdict(int)
        self._lock = asyncio.Lock()

    async def publish(self, topic: str, event: Event) -> None:
        """Publish the event as JSON on ``prefix + topic``."""
        await self._redis.publish(self._prefix + topic, json.dumps(event, default=str))

    @asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[AsyncIterator[Event]]:
        """Yield an async iterator of the topic's events until the context closes."""
        async with self._local.subscribe(topic) as events:
            await self._listen_to(topic)
            try:
                yield events
            finally:
                await self._stop_listening_to(topic)

    async def _listen_to(self, topic: str) -> None:
        async with self._lock:
            if self._pubsub is None:
                self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            self._topics[topic] += 1
            if self._topics[topic] == 1:
                await self._pubsub.subscribe(self._prefix + topic)
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(self._read(), name="redis-broker-reader")

    async def _stop_listening_to(self, topic: str) -> None:
        async with self._lock:
            self._topics[topic] -= 1
            if self._topics[topic] <= 0:
                del self._topics[topic]
                with contextlib.suppress(Exception):  # the connection may be gone
                    await self._pubsub.unsubscribe(self._prefix + topic)

    async def _read(self) -> None:
        """Hand every message of the subscribed topics to the local subscribers."""
        while True:
            if not self._topics:
                await asyncio.sleep(0.05)
                continue
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("redis broker: reading failed; retrying in 1 s")
                await asyncio.sleep(1)
                continue
            if not message or message.get("type") != "message":
                continue
            channel = message["channel"]
            channel = channel.decode() if isinstance(channel, bytes) else str(channel)
            try:
                event = json.loads(message["data"])
            except (ValueError, TypeError):
                logger.warning("ignoring a malformed event on %s", channel)
                continue
            await self._local.publish(channel.removeprefix(self._prefix), event)

    async def aclose(self) -> None:
        """Stop the reader and close the Redis connections."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        await self._redis.aclose()


def create_broker(redis_url: str) -> Broker:
    """The broker the settings ask for: Redis when a URL is set, otherwise in-process."""
    return RedisBroker(redis_url) if redis_url else InProcessBroker()
