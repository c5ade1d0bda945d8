from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.chat import messages
from bot.chat.service import ChatService, OutboundMessage, clean_text
from bot.conversations.models import Conversation
from bot.conversations.service import ConversationNotFoundError, history, start_conversation
from bot.handoff.models import Handoff
from bot.handoff.service import open_handoff

MAX_CHARS = 2000


@pytest.fixture
def service(session_factory: sessionmaker[Session], rasa: Any) -> ChatService:
    return ChatService(
        session_factory=session_factory,
        rasa_client=rasa.client(),
        max_message_chars=MAX_CHARS,
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


def _mode(factory: sessionmaker[Session], conversation_id: str) -> str:
    with factory() as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        return conversation.mode


async def test_message_is_stored_forwarded_and_reply_stored(
    service: ChatService, rasa: Any, conversation_id: str, session_factory: sessionmaker[Session]
) -> None:
    rasa.replies["Where is my order?"] = [
        {"text": "Let me check.", "buttons": [{"title": "Track it", "payload": "/track"}]},
        {"custom": {"citation": {"article_id": "orders-track", "title": "Tracking", "score": 0.7}}},
    ]

    replies = await service.handle_customer_message(
        conversation_id=conversation_id, text="Where is my order?"
    )

    assert len(replies) == 1
    reply = replies[0]
    assert isinstance(reply, OutboundMessage)
    assert reply.role == "bot"
    assert reply.text == "Let me check."
    assert [b.payload for b in reply.buttons] == ["/track"]
    assert reply.citation is not None and reply.citation.article_id == "orders-track"
    assert reply.id is not None
    assert rasa.sent == [{"sender": conversation_id, "message": "Where is my order?"}]
    assert _stored(session_factory, conversation_id) == [
        ("customer", "Where is my order?", "delivered"),
        ("bot", "Let me check.", "delivered"),
    ]
    with session_factory() as session:
        bot_message = history(session, conversation_id=conversation_id)[-1]
        assert bot_message.payload == {
            "buttons": [{"title": "Track it", "payload": "/track"}],
            "citation": {"article_id": "orders-track", "title": "Tracking", "score": 0.7},
        }
        assert OutboundMessage.from_message(bot_message) == reply


@pytest.mark.parametrize("text", ["", "   ", "\n\t  \n", "\x00\x07", "\r\n"])
async def test_empty_or_whitespace_gets_a_polite_sentence_and_nothing_is_forwarded(
    service: ChatService,
    rasa: Any,
    conversation_id: str,
    session_factory: sessionmaker[Session],
    text: str,
) -> None:
    replies = await service.handle_customer_message(conversation_id=conversation_id, text=text)

    assert [(r.role, r.text) for r in replies] == [("system", messages.EMPTY_MESSAGE)]
    assert rasa.requests == []
    assert _stored(session_factory, conversation_id) == []


async def test_100_kb_message_is_stored_rejected_and_answered_politely(
    service: ChatService, rasa: Any, conversation_id: str, session_factory: sessionmaker[Session]
) -> None:
    text = "x" * 100_000

    replies = await service.handle_customer_message(conversation_id=conversation_id, text=text)

    assert len(replies) == 1
    assert replies[0].role == "system"
    assert replies[0].text == messages.MESSAGE_TOO_LONG.format(max_chars=MAX_CHARS)
    assert rasa.requests == []
    stored = _stored(session_factory, conversation_id)
    assert stored[0] == ("customer", text, "rejected")
    assert stored[1][0] == "system"
    assert len(stored) == 2


async def test_message_at_the_limit_is_forwarded(
    service: ChatService, rasa: Any, conversation_id: str
) -> None:
    await service.handle_customer_message(conversation_id=conversation_id, text="y" * MAX_CHARS)
    assert len(rasa.sent) == 1


async def test_control_characters_are_stripped_except_newline_and_tab(
    service: ChatService, rasa: Any, conversation_id: str, session_factory: sessionmaker[Session]
) -> None:
    raw = "he\x00llo\x07\tworld\r\nsecond\x1b[31m line\ud800\x7f"

    await service.handle_customer_message(conversation_id=conversation_id, text=raw)

    expected = "hello\tworld\nsecond[31m line"
    assert rasa.sent == [{"sender": conversation_id, "message": expected}]
    assert _stored(session_factory, conversation_id)[0] == ("customer", expected, "delivered")


def test_clean_text_keeps_unicode() -> None:
    assert clean_text("Grüße 👋 — ok\n") == "Grüße 👋 — ok\n"


async def test_html_is_stored_verbatim(
    service: ChatService, conversation_id: str, session_factory: sessionmaker[Session]
) -> None:
    text = "<script>alert('x')</script> & <b>bold</b>"
    replies = await service.handle_customer_message(conversation_id=conversation_id, text=text)
    assert replies[0].text == f"echo: {text}"
    assert _stored(session_factory, conversation_id)[0][1] == text


async def test_rasa_down_keeps_message_and_apologises(
    service: ChatService,
    rasa: Any,
    conversation_id: str,
    session_factory: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    rasa.down = True

    with caplog.at_level(logging.ERROR, logger="bot.chat.service"):
        replies = await service.handle_customer_message(
            conversation_id=conversation_id, text="Hello?"
        )

    assert [(r.role, r.text) for r in replies] == [("system", messages.RASA_UNAVAILABLE)]
    assert replies[0].id is not None  # stored
    assert _stored(session_factory, conversation_id) == [
        ("customer", "Hello?", "undelivered"),
        ("system", messages.RASA_UNAVAILABLE, "delivered"),
    ]
    records = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(records) == 1
    assert conversation_id in records[0].getMessage()
    assert records[0].getMessage().startswith("rasa unavailable conversation=")


async def test_no_reply_from_rasa_gets_a_polite_sentence_and_a_log_line(
    service: ChatService,
    rasa: Any,
    conversation_id: str,
    session_factory: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    rasa.replies["where is my parcel?"] = []  # what Rasa answers when an action fails

    with caplog.at_level(logging.ERROR, logger="bot.chat.service"):
        replies = await service.handle_customer_message(
            conversation_id=conversation_id, text="where is my parcel?"
        )

    assert [(r.role, r.text) for r in replies] == [("system", messages.NO_REPLY)]
    assert _stored(session_factory, conversation_id) == [
        ("customer", "where is my parcel?", "delivered"),
        ("system", messages.NO_REPLY, "delivered"),
    ]
    assert f"conversation={conversation_id}" in caplog.records[-1].getMessage()


async def test_rasa_bad_response_is_handled_like_down(
    service: ChatService, rasa: Any, conversation_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    rasa.raw_body = b"not json"
    with caplog.at_level(logging.ERROR, logger="bot.chat.service"):
        replies = await service.handle_customer_message(conversation_id=conversation_id, text="hi")
    assert [r.text for r in replies] == [messages.RASA_UNAVAILABLE]
    assert conversation_id in caplog.records[-1].getMessage()


async def test_agent_mode_stores_but_does_not_forward(
    service: ChatService, rasa: Any, conversation_id: str, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        conversation.mode = "agent"
        session.commit()

    replies = await service.handle_customer_message(
        conversation_id=conversation_id, text="Are you there?"
    )

    assert replies == []
    assert rasa.requests == []
    assert _stored(session_factory, conversation_id) == [
        ("customer", "Are you there?", "delivered")
    ]


async def test_handoff_notice_reflects_the_mode_the_action_server_wrote(
    service: ChatService, rasa: Any, conversation_id: str, session_factory: sessionmaker[Session]
) -> None:
    def action_server_opens_handoff(sender: str, text: str) -> list[dict[str, Any]]:
        with session_factory() as session:  # another "process"
            handoff = open_handoff(
                session, conversation_id=sender, reason="customer_request", context={}
            )
        return [
            {"recipient_id": sender, "text": "Connecting you with a person."},
            {"recipient_id": sender, "custom": {"handoff": {"id": handoff.id, "team": None}}},
        ]

    rasa.replies["/human"] = action_server_opens_handoff

    replies = await service.handle_customer_message(conversation_id=conversation_id, text="/human")

    assert replies[0].handoff is not None
    assert _mode(session_factory, conversation_id) == "handoff_pending"
    # Still forwarded to Rasa while pending (the bot keeps answering until an agent joins).
    await service.handle_customer_message(conversation_id=conversation_id, text="still there?")
    assert rasa.sent[-1]["message"] == "still there?"


async def test_handoff_notice_repairs_a_mode_left_in_bot(
    service: ChatService, rasa: Any, conversation_id: str, session_factory: sessionmaker[Session]
) -> None:
    def handoff_row_only(sender: str, text: str) -> list[dict[str, Any]]:
        with session_factory() as session:
            handoff = Handoff(conversation_id=sender, reason="customer_request", context={})
            session.add(handoff)
            session.commit()
        return [
            {"recipient_id": sender, "text": "Connecting you."},
            {"recipient_id": sender, "custom": {"handoff": {"id": handoff.id}}},
        ]

    rasa.replies["/human"] = handoff_row_only

    await service.handle_customer_message(conversation_id=conversation_id, text="/human")

    assert _mode(session_factory, conversation_id) == "handoff_pending"


async def test_button_stores_title_and_forwards_payload(
    service: ChatService, rasa: Any, conversation_id: str, session_factory: sessionmaker[Session]
) -> None:
    await service.handle_button(
        conversation_id=conversation_id, title="Track my order", payload='/track{"x": 1}'
    )

    assert rasa.sent == [{"sender": conversation_id, "message": '/track{"x": 1}'}]
    with session_factory() as session:
        first = history(session, conversation_id=conversation_id)[0]
    assert (first.role, first.text) == ("customer", "Track my order")
    assert first.payload == {"button_payload": '/track{"x": 1}'}


async def test_unknown_conversation_raises(service: ChatService, rasa: Any) -> None:
    with pytest.raises(ConversationNotFoundError):
        await service.handle_customer_message(conversation_id="nope", text="hi")
    assert rasa.requests == []


async def test_open_conversation_and_history(
    service: ChatService, session_factory: sessionmaker[Session]
) -> None:
    conversation, token = await service.open_conversation(token=None, channel="webchat")
    assert token is not None
    again, no_token = await service.open_conversation(token=token, channel="webchat")
    assert again.id == conversation.id and no_token is None
    other, other_token = await service.open_conversation(token="forged", channel="webchat")
    assert other.id != conversation.id and other_token

    await service.handle_customer_message(conversation_id=conversation.id, text="hi")
    entries = await service.history(conversation_id=conversation.id)
    assert [(e.role, e.text) for e in entries] == [("customer", "hi"), ("bot", "echo: hi")]
    assert await service.history(conversation_id=other.id) == []
