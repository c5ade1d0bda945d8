from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.conversations.models import Conversation, Message
from bot.conversations.service import (
    ConversationNotFoundError,
    add_message,
    conversation_for_token,
    ensure_conversation,
    hash_token,
    history,
    set_mode,
    start_conversation,
)


def test_start_conversation_stores_only_the_token_hash(session: Session) -> None:
    conversation, token = start_conversation(session, channel="webchat")

    assert len(token) >= 40
    assert conversation.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert conversation.token_hash != token
    assert conversation.channel == "webchat"
    assert conversation.mode == "bot"
    assert len(conversation.id) == 32
    int(conversation.id, 16)  # uuid4 hex
    stored_hashes = session.scalars(select(Conversation.token_hash)).all()
    assert token not in stored_hashes


def test_tokens_and_ids_are_unique(session: Session) -> None:
    started = [start_conversation(session, channel="webchat") for _ in range(20)]
    assert len({c.id for c, _ in started}) == 20
    assert len({t for _, t in started}) == 20


def test_conversation_for_token_finds_only_its_own(session: Session) -> None:
    first, first_token = start_conversation(session, channel="webchat")
    second, second_token = start_conversation(session, channel="webchat")

    assert conversation_for_token(session, first_token) is first
    assert conversation_for_token(session, second_token) is second
    assert conversation_for_token(session, "not-a-token") is None
    assert conversation_for_token(session, "") is None
    assert conversation_for_token(session, None) is None
    assert conversation_for_token(session, first.token_hash) is None  # the hash is no token


def test_hash_token_is_sha256_hex() -> None:
    assert hash_token("abc") == hashlib.sha256(b"abc").hexdigest()


def test_history_is_oldest_first_and_limited_to_the_latest(session: Session) -> None:
    conversation, _ = start_conversation(session, channel="webchat")
    other, _ = start_conversation(session, channel="webchat")
    for number in range(5):
        add_message(session, conversation_id=conversation.id, role="customer", text=f"m{number}")
        add_message(session, conversation_id=other.id, role="customer", text=f"other{number}")

    assert [m.text for m in history(session, conversation_id=conversation.id)] == [
        "m0",
        "m1",
        "m2",
        "m3",
        "m4",
    ]
    assert [m.text for m in history(session, conversation_id=conversation.id, limit=2)] == [
        "m3",
        "m4",
    ]


def test_add_message_keeps_text_payload_and_status(session: Session) -> None:
    conversation, _ = start_conversation(session, channel="webchat")
    before = conversation.updated_at
    message = add_message(
        session,
        conversation_id=conversation.id,
        role="bot",
        text="<b>hi</b>\n",
        payload={"buttons": [{"title": "Yes", "payload": "/affirm"}]},
        status="delivered",
    )
    session.expunge_all()

    stored = session.get(Message, message.id)
    assert stored is not None
    assert stored.text == "<b>hi</b>\n"
    assert stored.payload == {"buttons": [{"title": "Yes", "payload": "/affirm"}]}
    assert stored.status == "delivered"
    refreshed = session.get(Conversation, conversation.id)
    assert refreshed is not None and refreshed.updated_at >= before


def test_add_message_rejects_unknown_conversation_role_and_status(session: Session) -> None:
    conversation, _ = start_conversation(session, channel="webchat")
    with pytest.raises(ConversationNotFoundError) as caught:
        add_message(session, conversation_id="missing", role="customer", text="hi")
    assert caught.value.conversation_id == "missing"
    with pytest.raises(ValueError):
        add_message(session, conversation_id=conversation.id, role="robot", text="hi")
    with pytest.raises(ValueError):
        add_message(session, conversation_id=conversation.id, role="bot", text="hi", status="lost")


def test_ensure_conversation_creates_unknown_channel_row_once(session: Session) -> None:
    created = ensure_conversation(session, conversation_id="rasa-shell-sender")
    again = ensure_conversation(session, conversation_id="rasa-shell-sender")
    session.commit()

    assert created is again
    assert created.channel == "unknown"
    assert created.token_hash is None
    assert created.mode == "bot"


def test_set_mode_validates(session: Session) -> None:
    conversation, _ = start_conversation(session, channel="webchat")
    set_mode(session, conversation_id=conversation.id, mode="agent")
    assert conversation.mode == "agent"
    with pytest.raises(ValueError):
        set_mode(session, conversation_id=conversation.id, mode="robot")
