"""The ticket state machine on a real (SQLite) database: routing, races, rules, audit."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.accounts.demo import DEMO_BUSINESS_EMAIL, DEMO_BUSINESS_TEAM, DEMO_CONSUMER_EMAIL
from bot.accounts.service import find_customer, link_conversation
from bot.agents.models import Agent
from bot.agents.service import create_agent
from bot.audit.models import AuditEvent
from bot.conversations.models import Conversation
from bot.conversations.service import history, start_conversation
from bot.handoff import service as tickets
from bot.handoff.errors import (
    InvalidTicketInputError,
    TicketClosedError,
    TicketConflictError,
    TicketNotFoundError,
)
from bot.handoff.models import Ticket

PASSWORD = "correct-horse-battery"


def _agent(session: Session, email: str, team: str = "customer-care", role: str = "agent") -> Agent:
    return create_agent(
        session,
        email=email,
        name=email.split("@")[0].title(),
        password=PASSWORD,
        role=role,
        team_slugs=[team],
    )


def _open(session: Session, conversation_id: str, **context: Any) -> Ticket:
    return tickets.open_ticket(
        session,
        conversation_id=conversation_id,
        reason_code="customer_request",
        reason="customer asked for a human",
        context=context,
    ).ticket


def _link(session: Session, conversation_id: str, email: str) -> None:
    profile = find_customer(session, email=email)
    assert profile is not None
    link_conversation(session, conversation_id=conversation_id, contact_id=profile.contact_id)


def _actions(session: Session, ticket_id: int) -> list[str]:
    return list(
        session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.ticket_id == ticket_id)
            .order_by(AuditEvent.id)
        )
    )


def test_open_routes_sets_mode_and_audits(demo_session: Session) -> None:
    conversation, _ = start_conversation(demo_session, channel="webchat")

    ticket = _open(demo_session, conversation.id, turns=[{"text": "where is my parcel?"}])

    assert ticket.status == "queued"
    assert ticket.team is not None and ticket.team.slug == "customer-care"
    assert ticket.priority == 1
    assert "where is my parcel?" in ticket.summary
    demo_session.refresh(conversation)
    assert conversation.mode == "handoff_pending"
    assert _actions(demo_session, ticket.id) == ["ticket.created"]


def test_open_twice_refreshes_the_one_open_ticket(demo_session: Session) -> None:
    conversation, _ = start_conversation(demo_session, channel="webchat")
    first = _open(demo_session, conversation.id, a=1)
    second = tickets.open_ticket(
        demo_session,
        conversation_id=conversation.id,
        reason_code="frustration",
        reason="angry",
        context={"b": 2},
    )

    assert second.created is False and second.ticket.id == first.id
    assert second.ticket.reason_code == "customer_request"  # the first reason stays
    assert second.ticket.context == {"a": 1, "b": 2}
    assert _actions(demo_session, first.id) == ["ticket.created", "ticket.updated"]


def test_the_database_refuses_a_second_open_ticket(demo_session: Session) -> None:
    conversation, _ = start_conversation(demo_session, channel="webchat")
    _open(demo_session, conversation.id)

    demo_session.add(
        Ticket(conversation_id=conversation.id, reason_code="x", reason="x", context={})
    )
    with pytest.raises(IntegrityError):
        demo_session.commit()


def test_a_lost_insert_race_returns_the_winners_ticket(
    demo_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversation, _ = start_conversation(demo_session, channel="webchat")
    winner = _open(demo_session, conversation.id)
    real = tickets.open_ticket_for
    calls = {"n": 0}

    def blind_first_read(session: Session, *, conversation_id: str) -> Ticket | None:
        calls["n"] += 1
        return None if calls["n"] == 1 else real(session, conversation_id=conversation_id)

    monkeypatch.setattr(tickets, "open_ticket_for", blind_first_read)
    opened = tickets.open_ticket(
        demo_session,
        conversation_id=conversation.id,
        reason_code="customer_request",
        reason="again",
        context={},
    )

    assert opened.created is False and opened.ticket.id == winner.id


def test_two_threads_opening_at_once_give_one_ticket(
    session_factory: sessionmaker[Session], demo_session: Session
) -> None:
    conversation, _ = start_conversation(demo_session, channel="webchat")
    barrier = threading.Barrier(2)
    ids: list[int] = []

    def open_one() -> None:
        with session_factory() as session:
            barrier.wait()
            ids.append(_open(session, conversation.id).id)

    threads = [threading.Thread(target=open_one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(ids)) == 1
    assert demo_session.scalar(text("select count(*) from tickets")) == 1


def test_business_claims_route_to_the_dedicated_team_with_high_priority(
    demo_session: Session,
) -> None:
    conversation, _ = start_conversation(demo_session, channel="webchat")
    _link(demo_session, conversation.id, DEMO_BUSINESS_EMAIL)

    ticket = _open(demo_session, conversation.id)

    assert ticket.team is not None and ticket.team.slug == DEMO_BUSINESS_TEAM
    assert ticket.identity_verified is False
    assert ticket.priority == 2


def test_consumers_go_to_customer_care_and_frustration_raises_priority(
    demo_session: Session,
) -> None:
    conversation, _ = start_conversation(demo_session, channel="webchat")
    _link(demo_session, conversation.id, DEMO_CONSUMER_EMAIL)

    ticket = tickets.open_ticket(
        demo_session,
        conversation_id=conversation.id,
        reason_code="frustration",
        reason="angry",
        context={},
    ).ticket

    assert ticket.team is not None and ticket.team.slug == "customer-care"
    assert ticket.priority == 2


def test_a_ticket_without_teams_is_unrouted_but_kept(session: Session) -> None:
    conversation, _ = start_conversation(session, channel="webchat")
    opened = tickets.open_ticket(
        session,
        conversation_id=conversation.id,
        reason_code="customer_request",
        reason="asked",
        context={},
    )
    assert opened.ticket.team_id is None
    assert opened.availability.available is False


def test_two_agents_claiming_at_once_one_wins(
    session_factory: sessionmaker[Session], demo_session: Session
) -> None:
    conversation, _ = start_conversation(demo_session, channel="webchat")
    ticket = _open(demo_session, conversation.id)
    agent_ids = [_agent(demo_session, f"a{n}@kestrel.example").id for n in range(2)]
    barrier = threading.Barrier(2)
    results: list[str] = []

    def claim(agent_id: int) -> None:
        with session_factory() as session:
            agent = session.get(Agent, agent_id)
            assert agent is not None
            barrier.wait()
            try:
                tickets.claim_ticket(session, ticket_id=ticket.id, agent=agent)
                results.append("won")
            except TicketConflictError as exc:
                results.append(exc.message)

    threads = [threading.Thread(target=claim, args=(agent_id,)) for agent_id in agent_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results)[-1] == "won" and results.count("won") == 1
    assert any("already claimed" in result for result in results)
    demo_session.refresh(conversation)
    assert conversation.mode == "agent" and conversation.rasa_paused is True


def test_agents_of_another_team_cannot_see_or_claim(demo_session: Session) -> None:
    conversation, _ = start_conversation(demo_session, channel="webchat")
    ticket = _open(demo_session, conversation.id)
    outsider = _agent(demo_session, "b2b@kestrel.example", team=DEMO_BUSINESS_TEAM)

    assert tickets.queue(demo_session, agent=outsider) == []
    with pytest.raises(TicketNotFoundError):
        tickets.get_ticket_for(demo_session, ticket_id=ticket.id, agent=outsider)
    with pytest.raises(TicketNotFoundError):
        tickets.claim_ticket(demo_session, ticket_id=ticket.id, agent=outsider)
    with pytest.raises(TicketNotFoundError):
        tickets.get_ticket_for(demo_session, ticket_id=987654, agent=outsider)


def test_queue_orders_by_priority_then_age(demo_session: Session) -> None:
    agent = _agent(demo_session, "q@kestrel.example")
    first, _ = start_conversation(demo_session, channel="webchat")
    second, _ = start_conversation(demo_session, channel="webchat")
    normal = _open(demo_session, first.id)
    urgent = tickets.open_ticket(
        demo_session,
        conversation_id=second.id,
        reason_code="frustration",
        reason="angry",
        context={},
    ).ticket

    assert [t.id for t in tickets.queue(demo_session, agent=agent)] == [urgent.id, normal.id]


def test_the_whole_life_of_a_ticket_is_audited_and_notes_stay_private(
    demo_session: Session,
) -> None:
    conversation, _ = start_conversation(demo_session, channel="webchat")
    ticket = _open(demo_session, conversation.id)
    alex = _agent(demo_session, "alex@kestrel.example")
    lead = _agent(demo_session, "lead@kestrel.example", role="lead")

    with pytest.raises(TicketConflictError):  # reply before claiming
        tickets.reply(demo_session, ticket_id=ticket.id, agent=alex, text="hi", max_chars=100)
    tickets.claim_ticket(demo_session, ticket_id=ticket.id, agent=alex)
    change = tickets.reply(
        demo_session, ticket_id=ticket.id, agent=alex, text="<b>Hello</b>", max_chars=100
    )
    tickets.add_note(demo_session, ticket_id=ticket.id, agent=lead, text="VIP", max_chars=100)
    with pytest.raises(InvalidTicketInputError):
        tickets.reply(demo_session, ticket_id=ticket.id, agent=alex, text="x" * 101, max_chars=100)
    with pytest.raises(InvalidTicketInputError):
        tickets.reply(demo_session, ticket_id=ticket.id, agent=alex, text="   ", max_chars=100)
    tickets.resolve(demo_session, ticket_id=ticket.id, agent=alex, note="refund sent")
    with pytest.raises(TicketClosedError):
        tickets.reply(demo_session, ticket_id=ticket.id, agent=alex, text="one more", max_chars=100)
    tickets.rate(demo_session, conversation_id=conversation.id, ticket_id=ticket.id, rating=4)

    assert change.customer_messages[0].text == "<b>Hello</b>"  # stored verbatim, escaped on display
    assert ticket.first_agent_reply_at is not None
    assert _actions(demo_session, ticket.id) == [
        "ticket.created",
        "ticket.assigned",
        "ticket.message",
        "ticket.note",
        "ticket.resolved",
        "ticket.rated",
    ]
    customer_view = [
        (m.role, m.text) for m in history(demo_session, conversation_id=conversation.id)
    ]
    assert ("agent", "VIP") not in customer_view
    assert ("agent", "<b>Hello</b>") in customer_view
    demo_session.refresh(conversation)
    assert conversation.mode == "bot"


def test_transfer_requeues_for_the_other_team_and_keeps_people_in_charge(
    demo_session: Session,
) -> None:
    conversation, _ = start_conversation(demo_session, channel="webchat")
    ticket = _open(demo_session, conversation.id)
    alex = _agent(demo_session, "alex@kestrel.example")
    tickets.claim_ticket(demo_session, ticket_id=ticket.id, agent=alex)
    from bot.accounts.models import Team

    team = demo_session.scalars(select(Team).where(Team.slug == DEMO_BUSINESS_TEAM)).one()
    change = tickets.transfer(demo_session, ticket_id=ticket.id, agent=alex, team_id=team.id)

    assert change.ticket.status == "queued" and change.ticket.assignee_id is None
    assert change.ticket.team_id == team.id
    demo_session.refresh(conversation)
    assert conversation.mode == "agent"
    with pytest.raises(TicketNotFoundError):  # alex no longer sees it
        tickets.get_ticket_for(demo_session, ticket_id=ticket.id, agent=alex)


def test_hand_back_and_withdraw_give_the_conversation_back_to_the_bot(
    demo_session: Session,
) -> None:
    conversation, _ = start_conversation(demo_session, channel="webchat")
    ticket = _open(demo_session, conversation.id)
    alex = _agent(demo_session, "alex@kestrel.example")
    tickets.claim_ticket(demo_session, ticket_id=ticket.id, agent=alex)
    change = tickets.hand_back(demo_session, ticket_id=ticket.id, agent=alex)
    assert change.rasa == "resume" and change.ticket.status == "handed_back"

    again = _open(demo_session, conversation.id)
    assert again.id != ticket.id
    withdrawn = tickets.withdraw(demo_session, conversation_id=conversation.id)
    assert withdrawn is not None and withdrawn.status == "withdrawn"
    assert tickets.withdraw(demo_session, conversation_id=conversation.id) is None
    demo_session.refresh(conversation)
    assert conversation.mode == "bot"


def test_ratings_are_checked(demo_session: Session) -> None:
    conversation, _ = start_conversation(demo_session, channel="webchat")
    other, _ = start_conversation(demo_session, channel="webchat")
    ticket = _open(demo_session, conversation.id)
    with pytest.raises(TicketNotFoundError):  # not resolved yet
        tickets.rate(demo_session, conversation_id=conversation.id, ticket_id=ticket.id, rating=5)
    alex = _agent(demo_session, "alex@kestrel.example")
    tickets.resolve(demo_session, ticket_id=ticket.id, agent=alex, note="")
    with pytest.raises(InvalidTicketInputError):
        tickets.rate(demo_session, conversation_id=conversation.id, ticket_id=ticket.id, rating=9)
    with pytest.raises(TicketNotFoundError):  # another conversation's ticket
        tickets.rate(demo_session, conversation_id=other.id, ticket_id=ticket.id, rating=5)


def test_the_audit_log_is_append_only(demo_session: Session) -> None:
    conversation, _ = start_conversation(demo_session, channel="webchat")
    _open(demo_session, conversation.id)

    for statement in ("update audit_events set actor = 'me'", "delete from audit_events"):
        with pytest.raises(IntegrityError):
            demo_session.execute(text(statement))
        demo_session.rollback()
    assert demo_session.scalar(text("select count(*) from audit_events")) >= 1


def test_open_creates_a_missing_conversation(demo_session: Session) -> None:
    _open(demo_session, "shell-sender")
    conversation = demo_session.get(Conversation, "shell-sender")
    assert conversation is not None and conversation.mode == "handoff_pending"
