from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.accounts.demo import load_demo_data
from bot.agents.models import Agent
from bot.agents.service import create_agent
from bot.chat import messages
from bot.chat.service import FRUSTRATION_PAYLOAD, ChatService, OutboundMessage, clean_text
from bot.conversations.models import Conversation
from bot.conversations.service import ConversationNotFoundError, history, start_conversation
from bot.handoff import service as tickets
from bot.handoff.models import Ticket

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


def _agent_owns(factory: sessionmaker[Session], conversation_id: str) -> int:
    """Open a ticket and let a demo agent claim it; return the ticket id."""
    with factory() as session:
        load_demo_data(session)
        agent = create_agent(
            session,
            email="alex@kestrel.example",
            name="Alex Agent",
            password="correct-horse-battery",
            team_slugs=["customer-care"],
        )
        opened = tickets.open_ticket(
            session,
            conversation_id=conversation_id,
            reason_code="customer_request",
            reason="asked",
            context={},
        )
        tickets.claim_ticket(session, ticket_id=opened.ticket.id, agent=agent)
        return opened.ticket.id


async def test_a_reply_under_way_when_a_person_takes_over_is_withheld(
    service: ChatService, rasa: Any, conversation_id: str, session_factory: sessionmaker[Session]
) -> None:
    def agent_claims_meanwhile(sender: str, text: str) -> list[dict[str, Any]]:
        _agent_owns(session_factory, sender)  # the desk, while Rasa works on the turn
        return [{"recipient_id": sender, "text": "A late bot answer."}]

    rasa.replies["is anyone there?"] = agent_claims_meanwhile

    replies = await service.handle_customer_message(
        conversation_id=conversation_id, text="is anyone there?"
    )

    assert replies == []  # the bot never speaks once a person owns the conversation
    assert ("bot", "A late bot answer.", "withheld") not in _stored(
        session_factory, conversation_id
    )
    with session_factory() as session:
        agent_view = history(session, conversation_id=conversation_id, for_agent=True)
    assert ("bot", "withheld") in [(m.role, m.status) for m in agent_view]


async def test_after_a_hand_back_rasa_is_resumed_before_the_next_message(
    service: ChatService, rasa: Any, conversation_id: str, session_factory: sessionmaker[Session]
) -> None:
    ticket_id = _agent_owns(session_factory, conversation_id)
    with session_factory() as session:
        agent = session.scalars(select(Agent)).one()
        tickets.hand_back(session, ticket_id=ticket_id, agent=agent)

    await service.handle_customer_message(conversation_id=conversation_id, text="hello again")

    assert rasa.tracker_events[0][0] == conversation_id
    assert rasa.tracker_events[0][1][0] == {"event": "resume"}
    assert rasa.sent[-1]["message"] == "hello again"
    # Resumed once: the flag is cleared, so the next turn goes straight to Rasa.
    await service.handle_customer_message(conversation_id=conversation_id, text="and again")
    assert len(rasa.tracker_events) == 1


async def test_frustration_in_bot_mode_asks_rasa_for_a_person(
    session_factory: sessionmaker[Session], rasa: Any, conversation_id: str
) -> None:
    seen: list[tuple[str, list[str]]] = []

    def detector(text: str, earlier: list[str]) -> bool:
        seen.append((text, earlier))
        return "ridiculous" in text

    service = ChatService(
        session_factory=session_factory,
        rasa_client=rasa.client(),
        max_message_chars=MAX_CHARS,
        detect_frustration=detector,
    )
    await service.handle_customer_message(conversation_id=conversation_id, text="where is it?")
    await service.handle_customer_message(
        conversation_id=conversation_id, text="this is ridiculous"
    )

    assert [m["message"] for m in rasa.sent] == ["where is it?", FRUSTRATION_PAYLOAD]
    assert seen[-1] == ("this is ridiculous", ["where is it?"])
    # The customer's own words are what the transcript keeps.
    assert ("customer", "this is ridiculous", "delivered") in _stored(
        session_factory, conversation_id
    )


async def test_a_rating_is_stored_by_the_service_not_sent_to_rasa(
    service: ChatService, rasa: Any, conversation_id: str, session_factory: sessionmaker[Session]
) -> None:
    ticket_id = _agent_owns(session_factory, conversation_id)
    with session_factory() as session:
        agent = session.scalars(select(Agent)).one()
        tickets.resolve(session, ticket_id=ticket_id, agent=agent, note="sorted")

    replies = await service.handle_button(
        conversation_id=conversation_id,
        title="5 ★",
        payload=tickets.rating_payload(ticket_id, 5),
    )
    again = await service.handle_button(
        conversation_id=conversation_id,
        title="1 ★",
        payload=tickets.rating_payload(ticket_id, 1),
    )

    assert [r.text for r in replies] == [tickets.RATED]
    assert "already rated" in again[0].text
    assert rasa.sent == []
    with session_factory() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None and ticket.rating == 5


async def test_a_forged_rating_is_refused_politely(
    service: ChatService, rasa: Any, conversation_id: str
) -> None:
    replies = await service.handle_button(
        conversation_id=conversation_id, title="5 ★", payload=tickets.rating_payload(999, 5)
    )
    garbage = await service.handle_button(
        conversation_id=conversation_id, title="5 ★", payload="/concierge_rate{not json"
    )

    assert replies[0].role == "system" and "doesn't exist" in replies[0].text
    assert garbage[0].text == messages.RATING_INVALID
    assert rasa.sent == []


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
