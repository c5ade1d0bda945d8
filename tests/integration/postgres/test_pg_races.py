"""Races settled by PostgreSQL itself: one open ticket, one agent, one owner per message.

Each contender runs in its own thread with its own connection. Two kinds of test:

* free-for-all: the contenders start together (a barrier), several rounds;
* forced: a third connection holds the row or index entry the contenders need, the test
  waits until PostgreSQL reports every contender blocked on a lock, then lets go, so the
  losing path (unique violation, conditional ``UPDATE`` matching nothing, ``FOR UPDATE``
  re-reading the row) is taken every time rather than by luck.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from bot.accounts.demo import load_demo_data
from bot.accounts.models import DEFAULT_TEAM_SLUG, Team
from bot.agents.models import Agent
from bot.audit.models import AuditEvent
from bot.chat.service import Admission, _admit_customer_message
from bot.conversations.attachments import (
    StoredFile,
    TooManyAttachmentsError,
    count_customer_attachments,
    record_customer_upload,
)
from bot.conversations.models import Conversation, Message
from bot.conversations.service import start_conversation
from bot.handoff import service as tickets
from bot.handoff.errors import TicketClosedError, TicketConflictError
from bot.handoff.models import Ticket

pytestmark = [pytest.mark.integration, pytest.mark.network, pytest.mark.postgres]

T = TypeVar("T")
CONTENDERS = 6
ROUNDS = 3
LOCK_WAIT_TIMEOUT = 15.0


@pytest.fixture
def sessions(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    with session_factory() as session:
        load_demo_data(session)
    return session_factory


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=CONTENDERS + 1) as executor:
        yield executor


def _agents(sessions: sessionmaker[Session], count: int, role: str = "agent") -> list[int]:
    """Agents of Customer Care, inserted directly (no argon2 hashing: nobody signs in)."""
    with sessions() as session:
        team = session.scalars(select(Team).where(Team.slug == DEFAULT_TEAM_SLUG)).one()
        agents = [
            Agent(
                email=f"agent{n}-{time.monotonic_ns()}@kestrel.example",
                name=f"Agent{n} Tester",
                role=role,
                password_hash="not-used",
                teams=[team],
            )
            for n in range(count)
        ]
        session.add_all(agents)
        session.commit()
        return [agent.id for agent in agents]


def _conversation(sessions: sessionmaker[Session]) -> str:
    with sessions() as session:
        conversation, _ = start_conversation(session, channel="webchat")
        return conversation.id


def _open(session: Session, conversation_id: str) -> tickets.TicketOpened:
    return tickets.open_ticket(
        session,
        conversation_id=conversation_id,
        reason_code="customer_request",
        reason="customer asked for a human",
        context={"turns": [{"text": "a person please"}]},
    )


def _in_session(sessions: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    with sessions() as session:
        return work(session)


def _claim(sessions: sessionmaker[Session], ticket_id: int, agent_id: int) -> str:
    """Claim as one agent: ``"won"`` or the conflict message."""
    with sessions() as session:
        agent = session.get(Agent, agent_id)
        assert agent is not None
        try:
            tickets.claim_ticket(session, ticket_id=ticket_id, agent=agent)
        except TicketConflictError as error:
            return error.message
        return "won"


def _admit(sessions: sessionmaker[Session], conversation_id: str, text_: str) -> Admission:
    with sessions() as session:
        return _admit_customer_message(
            session, conversation_id=conversation_id, text=text_, payload=None
        )


def _wait_for_lock_waiters(
    engine: Engine, count: int, *, unless: Future[Any] | None = None
) -> None:
    """Wait until ``count`` sessions of this database are blocked on a lock.

    With ``unless``, stop waiting when that contender finished without blocking (code
    that takes no lock); the test's assertions on its result then say what went wrong.
    """
    deadline = time.monotonic() + LOCK_WAIT_TIMEOUT
    with engine.connect() as connection:
        while unless is None or not unless.done():
            waiting = connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
            if waiting == count:
                return
            assert time.monotonic() < deadline, f"{waiting} of {count} contenders blocked"
            connection.rollback()
            time.sleep(0.02)


def _results(futures: list[Future[T]]) -> list[T]:
    return [future.result(timeout=LOCK_WAIT_TIMEOUT) for future in futures]


def _open_tickets(session: Session, conversation_id: str) -> list[Ticket]:
    return list(
        session.scalars(
            select(Ticket).where(
                Ticket.conversation_id == conversation_id,
                Ticket.status.in_(tickets.OPEN_TICKET_STATUSES),
            )
        )
    )


# -- one open ticket per conversation ------------------------------------------------------


def test_contenders_opening_a_ticket_at_once_share_one(
    sessions: sessionmaker[Session], pool: ThreadPoolExecutor
) -> None:
    for _ in range(ROUNDS):
        conversation_id = _conversation(sessions)
        barrier = threading.Barrier(CONTENDERS)

        def contend(
            session: Session,
            conversation_id: str = conversation_id,
            barrier: threading.Barrier = barrier,
        ) -> Any:
            barrier.wait()
            return _open(session, conversation_id)

        opened = _results([pool.submit(_in_session, sessions, contend) for _ in range(CONTENDERS)])

        assert len({result.ticket.id for result in opened}) == 1
        assert sum(result.created for result in opened) == 1
        with sessions() as session:
            assert len(_open_tickets(session, conversation_id)) == 1
            actions = session.scalars(
                select(AuditEvent.action).where(AuditEvent.conversation_id == conversation_id)
            ).all()
            assert sorted(actions) == ["ticket.created"] + ["ticket.updated"] * (CONTENDERS - 1)
            conversation = session.get(Conversation, conversation_id)
            assert conversation is not None and conversation.mode == "handoff_pending"


def test_inserts_blocked_on_the_partial_unique_index_read_the_winners_ticket(
    engine: Engine, sessions: sessionmaker[Session], pool: ThreadPoolExecutor
) -> None:
    """Every contender has read "no open ticket" and is inserting when the winner commits."""
    conversation_id = _conversation(sessions)
    with sessions() as winner:
        # The winner's insert, not yet committed: invisible to the contenders' reads,
        # but it holds the index entry their inserts need.
        first = _open_in_transaction(winner, conversation_id)
        futures = [
            pool.submit(_in_session, sessions, lambda s: _open(s, conversation_id))
            for _ in range(CONTENDERS)
        ]
        _wait_for_lock_waiters(engine, CONTENDERS)
        winner.commit()
        opened = _results(futures)

    assert {result.ticket.id for result in opened} == {first}
    assert not any(result.created for result in opened)
    with sessions() as session:
        assert [ticket.id for ticket in _open_tickets(session, conversation_id)] == [first]
        ticket = session.get(Ticket, first)
        assert ticket is not None and ticket.context.get("turns")  # refreshed by the losers


def _open_in_transaction(session: Session, conversation_id: str) -> int:
    ticket = Ticket(
        conversation_id=conversation_id,
        status="queued",
        reason_code="customer_request",
        reason="asked first",
        channel="webchat",
        language="en",
        summary="",
        context={},
    )
    session.add(ticket)
    session.flush()
    return ticket.id


# -- one agent per ticket ------------------------------------------------------------------


def test_agents_claiming_at_once_one_wins_the_others_learn_who(
    sessions: sessionmaker[Session], pool: ThreadPoolExecutor
) -> None:
    agent_ids = _agents(sessions, CONTENDERS)
    for _ in range(ROUNDS):
        conversation_id = _conversation(sessions)
        ticket_id = _in_session(sessions, lambda s, c=conversation_id: _open(s, c).ticket.id)
        barrier = threading.Barrier(CONTENDERS)

        def contend(
            agent_id: int, ticket_id: int = ticket_id, barrier: threading.Barrier = barrier
        ) -> str:
            barrier.wait()
            return _claim(sessions, ticket_id, agent_id)

        outcomes = _results([pool.submit(contend, agent_id) for agent_id in agent_ids])

        assert outcomes.count("won") == 1
        winner_id = agent_ids[outcomes.index("won")]
        with sessions() as session:
            ticket = session.get(Ticket, ticket_id)
            winner = session.get(Agent, winner_id)
            assert ticket is not None and winner is not None
            assert (ticket.status, ticket.assignee_id) == ("assigned", winner_id)
            losers = [outcome for outcome in outcomes if outcome != "won"]
            assert losers == [f"{winner.name} has already claimed this ticket."] * (CONTENDERS - 1)
            joined = session.scalars(
                select(Message.text).where(
                    Message.conversation_id == conversation_id, Message.role == "system"
                )
            ).all()
            assert len(joined) == 1  # one "has joined the chat", from the winner only


def test_claims_blocked_on_the_row_see_the_committed_claim(
    engine: Engine, sessions: sessionmaker[Session], pool: ThreadPoolExecutor
) -> None:
    """The conditional UPDATE re-checks ``status = 'queued'`` after waiting for the row."""
    *contenders, holder_id = _agents(sessions, CONTENDERS + 1)
    conversation_id = _conversation(sessions)
    ticket_id = _in_session(sessions, lambda s: _open(s, conversation_id).ticket.id)
    with engine.connect() as holder:
        _claim_in_transaction(holder, ticket_id, holder_id)
        futures = [pool.submit(_claim, sessions, ticket_id, agent_id) for agent_id in contenders]
        _wait_for_lock_waiters(engine, CONTENDERS)
        holder.commit()
        outcomes = _results(futures)

    holder_name = f"Agent{CONTENDERS} Tester"
    assert outcomes == [f"{holder_name} has already claimed this ticket."] * CONTENDERS


def _claim_in_transaction(connection: Connection, ticket_id: int, agent_id: int) -> None:
    updated = connection.execute(
        text(
            "UPDATE tickets SET status = 'assigned', assignee_id = :agent, assigned_at = now() "
            "WHERE id = :ticket AND status = 'queued'"
        ),
        {"agent": agent_id, "ticket": ticket_id},
    )
    assert updated.rowcount == 1


# -- a customer message while an agent claims ----------------------------------------------


def test_a_message_waits_for_the_conversation_lock_and_reads_the_new_owner(
    engine: Engine, sessions: sessionmaker[Session], pool: ThreadPoolExecutor
) -> None:
    conversation_id = _conversation(sessions)
    with engine.connect() as holder:
        holder.execute(
            text("SELECT id FROM conversations WHERE id = :id FOR UPDATE"), {"id": conversation_id}
        )
        admitted = pool.submit(_admit, sessions, conversation_id, "hello?")
        _wait_for_lock_waiters(engine, 1)  # without FOR UPDATE it would not wait
        assert not admitted.done()
        holder.execute(
            text("UPDATE conversations SET mode = 'agent' WHERE id = :id"), {"id": conversation_id}
        )
        holder.commit()
        admission = admitted.result(timeout=LOCK_WAIT_TIMEOUT)

    assert admission.mode == "agent"  # the committed owner, not the one before the wait


def test_a_message_and_a_claim_at_once_are_decided_in_one_order(
    engine: Engine, sessions: sessionmaker[Session], pool: ThreadPoolExecutor
) -> None:
    """Whichever takes the conversation row first, the message's owner matches the order.

    The claim's "has joined" message and the customer's message are both inserted with
    the conversation row locked, so their ids tell which transaction went first: the
    message goes to the bot exactly when it came before the claim.
    """
    agent_ids = _agents(sessions, 1)
    orders: set[str] = set()
    for round_ in range(ROUNDS * 2):
        conversation_id = _conversation(sessions)
        ticket_id = _in_session(sessions, lambda s, c=conversation_id: _open(s, c).ticket.id)
        with engine.connect() as holder:
            holder.execute(
                text("SELECT id FROM conversations WHERE id = :id FOR UPDATE"),
                {"id": conversation_id},
            )
            first, second = (
                (lambda t=ticket_id: _claim(sessions, t, agent_ids[0])),
                (lambda c=conversation_id: _admit(sessions, c, "are you there?")),
            )
            if round_ % 2:
                first, second = second, first
            futures: list[Future[Any]] = [pool.submit(first)]
            _wait_for_lock_waiters(engine, 1)
            futures.append(pool.submit(second))
            _wait_for_lock_waiters(engine, 2)
            holder.rollback()
            results = _results(futures)
        claim_outcome = next(result for result in results if isinstance(result, str))
        admission = next(result for result in results if isinstance(result, Admission))

        assert claim_outcome == "won"
        with sessions() as session:
            texts = dict(
                session.execute(
                    select(Message.id, Message.role).where(
                        Message.conversation_id == conversation_id
                    )
                ).all()
            )
            ticket = session.get(Ticket, ticket_id)
            assert ticket is not None and ticket.status == "assigned"
        assert sorted(texts.values()) == ["customer", "system"]  # nothing lost
        joined_id = next(id_ for id_, role in texts.items() if role == "system")
        claim_first = joined_id < admission.message_id
        assert admission.mode == ("agent" if claim_first else "handoff_pending")
        assert admission.ticket_id == ticket_id
        orders.add("claim first" if claim_first else "message first")
    assert orders == {"claim first", "message first"}  # both orders were exercised


# -- the customer withdraws while an agent claims ------------------------------------------


def _withdraw(sessions: sessionmaker[Session], conversation_id: str) -> int | None:
    with sessions() as session:
        ticket = tickets.withdraw(session, conversation_id=conversation_id)
        return ticket.id if ticket else None


def test_a_withdrawal_blocked_by_a_claim_leaves_the_claimed_ticket_alone(
    engine: Engine, sessions: sessionmaker[Session], pool: ThreadPoolExecutor
) -> None:
    """ "Never mind" read the ticket as queued, but an agent's claim committed first."""
    (holder_id,) = _agents(sessions, 1)
    conversation_id = _conversation(sessions)
    ticket_id = _in_session(sessions, lambda s: _open(s, conversation_id).ticket.id)
    with engine.connect() as holder:
        _claim_in_transaction(holder, ticket_id, holder_id)
        holder.execute(
            text("UPDATE conversations SET mode = 'agent' WHERE id = :id"), {"id": conversation_id}
        )
        withdrawn = pool.submit(_withdraw, sessions, conversation_id)
        _wait_for_lock_waiters(engine, 1, unless=withdrawn)
        holder.commit()
        assert withdrawn.result(timeout=LOCK_WAIT_TIMEOUT) is None

    with sessions() as session:
        ticket = session.get(Ticket, ticket_id)
        conversation = session.get(Conversation, conversation_id)
        assert ticket is not None and conversation is not None
        assert (ticket.status, ticket.assignee_id) == ("assigned", holder_id)
        assert conversation.mode == "agent"


def test_withdrawal_and_claim_at_once_one_of_them_happens(
    sessions: sessionmaker[Session], pool: ThreadPoolExecutor
) -> None:
    (agent_id,) = _agents(sessions, 1)
    for _ in range(ROUNDS * 2):
        conversation_id = _conversation(sessions)
        ticket_id = _in_session(sessions, lambda s, c=conversation_id: _open(s, c).ticket.id)
        barrier = threading.Barrier(2)

        def claim(ticket_id: int = ticket_id, barrier: threading.Barrier = barrier) -> str:
            barrier.wait()
            return _claim(sessions, ticket_id, agent_id)

        def withdraw(
            conversation_id: str = conversation_id, barrier: threading.Barrier = barrier
        ) -> int | None:
            barrier.wait()
            return _withdraw(sessions, conversation_id)

        claimed, withdrawn = _results([pool.submit(claim), pool.submit(withdraw)])
        with sessions() as session:
            ticket = session.get(Ticket, ticket_id)
            conversation = session.get(Conversation, conversation_id)
            assert ticket is not None and conversation is not None
            if claimed == "won":
                assert withdrawn is None
                assert (ticket.status, conversation.mode) == ("assigned", "agent")
            else:
                assert claimed == TicketClosedError(ticket_id).message
                assert withdrawn == ticket_id
                assert (ticket.status, conversation.mode) == ("withdrawn", "bot")


# -- desk steps on a ticket closed meanwhile -----------------------------------------------


def _lead_assigns(sessions: sessionmaker[Session], ticket_id: int, lead_id: int, to: int) -> str:
    with sessions() as session:
        lead = session.get(Agent, lead_id)
        assert lead is not None
        try:
            tickets.assign_ticket(session, ticket_id=ticket_id, lead=lead, assignee_id=to)
        except TicketConflictError as error:
            return error.message
        return "assigned"


def test_an_assignment_blocked_by_a_hand_back_does_not_reopen_the_ticket(
    engine: Engine, sessions: sessionmaker[Session], pool: ThreadPoolExecutor
) -> None:
    """The lead read the ticket as open, but the agent's hand-back committed first."""
    (lead_id,) = _agents(sessions, 1, role="lead")
    agent_id, other_id = _agents(sessions, 2)
    conversation_id = _conversation(sessions)
    ticket_id = _in_session(sessions, lambda s: _open(s, conversation_id).ticket.id)
    assert _claim(sessions, ticket_id, agent_id) == "won"
    with engine.connect() as holder:
        holder.execute(
            text("UPDATE tickets SET status = 'handed_back', closed_at = now() WHERE id = :id"),
            {"id": ticket_id},
        )
        assigned = pool.submit(_lead_assigns, sessions, ticket_id, lead_id, other_id)
        _wait_for_lock_waiters(engine, 1, unless=assigned)
        holder.commit()
        outcome = assigned.result(timeout=LOCK_WAIT_TIMEOUT)

    assert outcome == TicketClosedError(ticket_id).message
    with sessions() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        assert (ticket.status, ticket.assignee_id) == ("handed_back", agent_id)


# -- the customer's file quota -------------------------------------------------------------


def test_uploads_at_once_never_pass_the_per_conversation_file_limit(
    sessions: sessionmaker[Session], pool: ThreadPoolExecutor
) -> None:
    limit = 2
    conversation_id = _conversation(sessions)
    barrier = threading.Barrier(CONTENDERS)

    def upload(n: int) -> str:
        stored = StoredFile(sha256=f"{n:064x}", size_bytes=10, content_type="image/png")
        with sessions() as session:
            barrier.wait()
            try:
                record_customer_upload(
                    session,
                    conversation_id=conversation_id,
                    stored=stored,
                    filename=f"photo-{n}.png",
                    max_files=limit,
                )
            except TooManyAttachmentsError:
                return "refused"
            return "stored"

    outcomes = _results([pool.submit(upload, n) for n in range(CONTENDERS)])

    assert sorted(outcomes) == ["refused"] * (CONTENDERS - limit) + ["stored"] * limit
    with sessions() as session:
        assert count_customer_attachments(session, conversation_id=conversation_id) == limit


def test_a_handoff_blocked_by_a_resolve_opens_a_new_ticket(
    engine: Engine, sessions: sessionmaker[Session], pool: ThreadPoolExecutor
) -> None:
    """The customer asks for a person again just as the agent resolves the open ticket."""
    conversation_id = _conversation(sessions)
    first = _in_session(sessions, lambda s: _open(s, conversation_id).ticket.id)
    with engine.connect() as holder:
        holder.execute(
            text("UPDATE tickets SET status = 'resolved', closed_at = now() WHERE id = :id"),
            {"id": first},
        )
        holder.execute(
            text("UPDATE conversations SET mode = 'bot' WHERE id = :id"), {"id": conversation_id}
        )
        opened = pool.submit(_in_session, sessions, lambda s: _open(s, conversation_id))
        _wait_for_lock_waiters(engine, 1, unless=opened)
        holder.commit()
        result = opened.result(timeout=LOCK_WAIT_TIMEOUT)

    assert result.created and result.ticket.id != first
    with sessions() as session:
        assert [ticket.id for ticket in _open_tickets(session, conversation_id)] == [
            result.ticket.id
        ]
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None and conversation.mode == "handoff_pending"
