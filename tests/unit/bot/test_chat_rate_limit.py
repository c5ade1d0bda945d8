"""The chat rate limit: a burst is stored and marked, Rasa sees only the allowed messages."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.chat import messages
from bot.chat.rate_limit import RateLimit, rate_limit_for
from bot.chat.service import ChatService
from bot.config import Settings
from bot.conversations.models import Conversation
from bot.conversations.service import history, start_conversation
from bot.db.session import create_db_engine, create_session_factory

LIMIT = RateLimit(messages=10, window_seconds=10.0)


def _service(factory: sessionmaker[Session], rasa: Any, limit: RateLimit | None) -> ChatService:
    return ChatService(
        session_factory=factory, rasa_client=rasa.client(), max_message_chars=200, rate_limit=limit
    )


@pytest.fixture
def conversation_id(session_factory: sessionmaker[Session]) -> str:
    with session_factory() as session:
        conversation, _ = start_conversation(session, channel="webchat")
    return conversation.id


def _stored(factory: sessionmaker[Session], conversation_id: str) -> list[tuple[str, str, str]]:
    with factory() as session:
        return [
            (m.role, m.text, m.status) for m in history(session, conversation_id=conversation_id)
        ]


async def test_fifty_messages_at_once_get_one_polite_sentence_and_nothing_is_lost(
    session_factory: sessionmaker[Session], rasa: Any, conversation_id: str
) -> None:
    service = _service(session_factory, rasa, LIMIT)

    replies = [
        await service.handle_customer_message(conversation_id=conversation_id, text=f"msg {n}")
        for n in range(50)
    ]

    # Rasa saw the first ten only: nothing queues on its lock for this conversation.
    assert [sent["message"] for sent in rasa.sent] == [f"msg {n}" for n in range(10)]
    assert [[r.text for r in turn] for turn in replies[:10]] == [
        [f"echo: msg {n}"] for n in range(10)
    ]
    assert [r.text for r in replies[10]] == [messages.RATE_LIMITED]
    assert all(turn == [] for turn in replies[11:])
    stored = _stored(session_factory, conversation_id)
    customer = [(text, status) for role, text, status in stored if role == "customer"]
    assert customer == [(f"msg {n}", "delivered") for n in range(10)] + [
        (f"msg {n}", "rate_limited") for n in range(10, 50)
    ]
    assert [text for role, text, _ in stored if role == "system"] == [messages.RATE_LIMITED]


async def test_the_limit_is_shared_by_two_replicas(
    session_factory: sessionmaker[Session], rasa: Any, conversation_id: str, database_url: str
) -> None:
    """Two services with their own engines on one database (two bot-service replicas)."""
    other_engine = create_db_engine(database_url)
    replica_a = _service(session_factory, rasa, LIMIT)
    replica_b = _service(create_session_factory(other_engine), rasa, LIMIT)

    async def burst(service: ChatService, name: str) -> None:
        for n in range(8):
            await service.handle_customer_message(
                conversation_id=conversation_id, text=f"{name}{n}"
            )

    try:
        await asyncio.gather(burst(replica_a, "a"), burst(replica_b, "b"))
    finally:
        other_engine.dispose()

    assert len(rasa.sent) == LIMIT.messages
    statuses = [
        status
        for role, _, status in _stored(session_factory, conversation_id)
        if role == "customer"
    ]
    assert statuses.count("rate_limited") == 16 - LIMIT.messages
    system = [
        text for role, text, _ in _stored(session_factory, conversation_id) if role == "system"
    ]
    assert system == [messages.RATE_LIMITED]


async def test_messages_flow_again_after_the_window(
    session_factory: sessionmaker[Session], rasa: Any, conversation_id: str
) -> None:
    service = _service(session_factory, rasa, RateLimit(messages=2, window_seconds=0.5))
    for n in range(4):
        await service.handle_customer_message(conversation_id=conversation_id, text=f"first {n}")
    await asyncio.sleep(0.6)
    later = await service.handle_customer_message(conversation_id=conversation_id, text="later")
    for n in range(2):
        await service.handle_customer_message(conversation_id=conversation_id, text=f"again {n}")

    assert [r.text for r in later] == ["echo: later"]
    assert [sent["message"] for sent in rasa.sent] == ["first 0", "first 1", "later", "again 0"]
    system = [
        text for role, text, _ in _stored(session_factory, conversation_id) if role == "system"
    ]
    assert system == [messages.RATE_LIMITED, messages.RATE_LIMITED]  # one per burst


async def test_messages_to_a_person_are_not_limited(
    session_factory: sessionmaker[Session], rasa: Any, conversation_id: str
) -> None:
    with session_factory() as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        conversation.mode = "agent"
        session.commit()
    service = _service(session_factory, rasa, RateLimit(messages=2, window_seconds=10))

    for n in range(5):
        assert (
            await service.handle_customer_message(conversation_id=conversation_id, text=f"{n}")
            == []
        )

    assert rasa.sent == []
    assert {status for _, _, status in _stored(session_factory, conversation_id)} == {"delivered"}


def test_the_limit_comes_from_the_settings() -> None:
    assert rate_limit_for(Settings(chat_rate_limit_messages=0)) is None
    assert rate_limit_for(
        Settings(chat_rate_limit_messages=5, chat_rate_limit_window_seconds=2)
    ) == RateLimit(messages=5, window_seconds=2.0)
