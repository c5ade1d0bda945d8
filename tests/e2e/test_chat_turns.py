"""Whole turns over the websocket against the real stack: answers, handoff context, B2B routing."""

from __future__ import annotations

from bot.accounts.demo import DEMO_BUSINESS_EMAIL
from bot.config import Settings
from bot.db.session import create_db_engine, create_session_factory
from bot.handoff.models import Ticket
from tests.helpers.chat_client import ChatClient


def bot_messages(frames: list[dict]) -> list[dict]:
    return [f for f in frames if f.get("role") == "bot"]


def load_handoff(settings: Settings, conversation_id: str) -> Ticket:
    engine = create_db_engine(settings.database_url)
    try:
        with create_session_factory(engine)() as session:
            handoff = session.query(Ticket).filter_by(conversation_id=conversation_id).one()
            session.expunge(handoff)
            return handoff
    finally:
        engine.dispose()


async def test_knowledge_answer_carries_the_article_citation(running_stack: Settings) -> None:
    async with ChatClient(running_stack.web_url) as chat:
        replies = bot_messages(await chat.say("is there a charge for delivery to my house?"))
    cited = [r["citation"] for r in replies if r.get("citation")]
    assert cited and cited[0]["article_id"] == "delivery-costs"
    assert cited[0]["score"] >= running_stack.kb_answer_threshold


async def test_unknown_question_says_so_and_offers_a_human(running_stack: Settings) -> None:
    async with ChatClient(running_stack.web_url) as chat:
        replies = bot_messages(await chat.say("who won the football world cup in 1998?"))
    assert not any(r.get("citation") for r in replies)
    payloads = [b["payload"] for r in replies for b in r.get("buttons") or []]
    assert "/request_human" in payloads


async def test_handoff_records_what_the_bot_understood_and_tried(running_stack: Settings) -> None:
    async with ChatClient(running_stack.web_url) as chat:
        await chat.say("how do I reset my password?")
        replies = await chat.say("I need to speak to a human agent")
        conversation_id = await _conversation_id(chat, running_stack)
    assert any(r.get("handoff") for r in replies)
    handoff = load_handoff(running_stack, conversation_id)
    assert handoff.status == "queued"
    context_text = str(handoff.context)
    assert "request_human" in context_text
    assert "account-reset-password" in context_text


async def test_business_claim_routes_to_the_account_team_and_reveals_nothing(
    running_stack: Settings,
) -> None:
    async with ChatClient(running_stack.web_url) as chat:
        identified = bot_messages(await chat.say(f"hi, this is {DEMO_BUSINESS_EMAIL}"))
        shown = " ".join(r.get("text") or "" for r in identified)
        assert identified and "Ingrid" not in shown and "Fjord" not in shown, identified
        await chat.say("please put me through to a person")
        conversation_id = await _conversation_id(chat, running_stack)
    handoff = load_handoff(running_stack, conversation_id)
    assert handoff.team_id is not None and handoff.identity_verified is False
    engine = create_db_engine(running_stack.database_url)
    try:
        with create_session_factory(engine)() as session:
            from bot.accounts.models import Team

            team = session.get(Team, handoff.team_id)
            assert team is not None and team.slug != "customer-care"
    finally:
        engine.dispose()


async def _conversation_id(chat: ChatClient, settings: Settings) -> str:
    """Look the conversation up by the token the server gave this client."""
    from bot.conversations.service import conversation_for_token

    engine = create_db_engine(settings.database_url)
    try:
        with create_session_factory(engine)() as session:
            conversation = conversation_for_token(session, chat.token or "")
            assert conversation is not None
            return conversation.id
    finally:
        engine.dispose()


async def test_frustration_hands_over_with_its_reason(running_stack: Settings) -> None:
    async with ChatClient(running_stack.web_url) as chat:
        await chat.say("where is my parcel?")
        replies = await chat.say(
            "This is RIDICULOUS. Third time I ask and still no answer, worst service ever!!!"
        )
        conversation_id = await _conversation_id(chat, running_stack)
    assert any(r.get("handoff") for r in replies), replies
    ticket = load_handoff(running_stack, conversation_id)
    assert ticket.reason_code == "frustration"
    assert ticket.priority >= 2


async def test_two_unanswered_turns_hand_over_and_never_mind_withdraws(
    running_stack: Settings,
) -> None:
    async with ChatClient(running_stack.web_url) as chat:
        first = bot_messages(await chat.say("who won the football world cup in 1998?"))
        second = bot_messages(await chat.say("what is the capital of mongolia?"))
        conversation_id = await _conversation_id(chat, running_stack)
        ticket = load_handoff(running_stack, conversation_id)
        withdrawn = bot_messages(await chat.say("never mind, I don't need a person anymore"))
    assert not any(r.get("handoff") for r in first)
    assert any(r.get("handoff") for r in second), second
    assert ticket.reason_code == "repeated_no_answer"
    assert any("cancelled" in (r.get("text") or "") for r in withdrawn), withdrawn
    assert load_handoff(running_stack, conversation_id).status == "withdrawn"
