"""The agent desk through the test client: queue, ticket page, actions, audit, live channel.

Agents are signed in directly with a server-side session (the sign-in page is tested on
its own); tickets are opened with the handoff service, as the internal API does.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.accounts.demo import DEMO_BUSINESS_EMAIL, DEMO_BUSINESS_TEAM, seed_demo_database
from bot.accounts.models import DEFAULT_TEAM_SLUG, Team
from bot.accounts.service import find_customer, link_conversation
from bot.agents.service import create_agent, start_session
from bot.audit.models import AuditEvent
from bot.audit.service import record_event
from bot.config import Settings
from bot.conversations.models import Message
from bot.conversations.service import add_message, start_conversation
from bot.handoff import service as tickets
from bot.handoff.demo import CANNED_REPLIES, load_demo_canned_replies
from bot.handoff.models import CannedReply, Ticket
from bot.realtime.broker import InProcessBroker
from bot.web.auth import SESSION_COOKIE
from bot.web.routes.desk import (
    DeskEventFilter,
    audit_csv_text,
    csv_safe,
    desk_event_stream,
    event_visible,
)

PASSWORD = "correct-horse-battery"
ORIGIN = "http://127.0.0.1:8000"
OTHER_TEAM = DEMO_BUSINESS_TEAM
ACTIONS = ("claim", "assign", "reply", "note", "transfer", "resolve", "hand-back")


@pytest.fixture
def fake_rasa(fake_rasa: Any) -> Any:
    """The shared fake Rasa, also accepting tracker events (pause/resume) and recording them."""
    handle = fake_rasa.handler
    fake_rasa.tracker_events = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/tracker/events"):
            fake_rasa.tracker_events.append(
                (request.url.path.split("/")[2], json.loads(request.content))
            )
            return httpx.Response(200, json={})
        return handle(request)

    fake_rasa.handler = handler
    return fake_rasa


@dataclass
class Desker:
    """A signed-in desk user: their id, cookie token and CSRF token."""

    id: int
    token: str
    csrf: str


class Desk:
    """Helpers over one TestClient: sign people in, open tickets, call the desk."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def db(self) -> Session:
        return self.client.app.state.session_factory()  # type: ignore[attr-defined,no-any-return]

    def team_id(self, slug: str) -> int:
        with self.db() as session:
            return session.scalars(select(Team.id).where(Team.slug == slug)).one()

    def sign_in(self, email: str, *, team: str = DEFAULT_TEAM_SLUG, role: str = "agent") -> Desker:
        import datetime as dt

        with self.db() as session:
            agent = create_agent(
                session,
                email=email,
                name=email.split("@")[0].replace(".", " ").title(),
                password=PASSWORD,
                role=role,
                team_slugs=[team] if team else [],
            )
            new = start_session(
                session, agent=agent, lifetime=dt.timedelta(hours=1), second_factor_pending=False
            )
            desker = Desker(id=agent.id, token=new.token, csrf=new.row.csrf_token)
        self.use(desker)
        return desker

    def use(self, desker: Desker) -> None:
        self.client.cookies.set(SESSION_COOKIE, desker.token)

    def open_ticket(self, *texts: str, business: bool = False, **context: Any) -> int:
        with self.db() as session:
            conversation, _ = start_conversation(session, channel="webchat")
            if business:
                profile = find_customer(session, email=DEMO_BUSINESS_EMAIL)
                assert profile is not None
                link_conversation(
                    session, conversation_id=conversation.id, contact_id=profile.contact_id
                )
            for text in texts or ("where is my parcel?",):
                add_message(session, conversation_id=conversation.id, role="customer", text=text)
            opened = tickets.open_ticket(
                session,
                conversation_id=conversation.id,
                reason_code="customer_request",
                reason="customer asked for a human",
                context=context,
            )
            return opened.ticket.id

    def post(self, desker: Desker, ticket_id: int, action: str, **body: Any) -> httpx.Response:
        self.use(desker)
        return self.client.post(
            f"/desk/api/tickets/{ticket_id}/{action}",
            json=body,
            headers={"X-CSRF-Token": desker.csrf, "Origin": ORIGIN},
        )

    def ticket(self, ticket_id: int) -> Ticket:
        with self.db() as session:
            ticket = session.get(Ticket, ticket_id)
            assert ticket is not None
            return ticket

    def audit(self, ticket_id: int) -> list[str]:
        with self.db() as session:
            return list(
                session.scalars(
                    select(AuditEvent.action)
                    .where(AuditEvent.ticket_id == ticket_id)
                    .order_by(AuditEvent.id)
                )
            )

    def message_count(self, ticket_id: int) -> int:
        conversation_id = self.ticket(ticket_id).conversation_id
        with self.db() as session:
            return (
                session.scalar(
                    select(func.count()).where(Message.conversation_id == conversation_id)
                )
                or 0
            )


@pytest.fixture
def desk(client: TestClient, settings: Settings) -> Iterator[Desk]:
    seed_demo_database(settings.database_url)
    yield Desk(client)


# -- the queue ---------------------------------------------------------------------------------


def test_queue_lists_only_own_team_tickets_with_the_count_in_the_title(desk: Desk) -> None:
    mine = desk.open_ticket("my lamp arrived broken")
    theirs = desk.open_ticket("invoice question", business=True)
    desk.sign_in("ana@kestrel.example")

    page = desk.client.get("/desk")
    api = desk.client.get("/desk/api/queue")

    assert page.status_code == 200
    assert "<title>(1) Queue · Concierge desk</title>" in page.text
    assert f"/desk/tickets/{mine}" in page.text
    assert f"/desk/tickets/{theirs}" not in page.text
    assert '<script src="/static/desk.js" defer></script>' in page.text
    assert "<script>" not in page.text
    assert [item["ticket"]["id"] for item in api.json()["items"]] == [mine]
    assert api.json()["queued"] == 1


def test_queue_is_ordered_by_priority_then_waiting_time(desk: Desk) -> None:
    first = desk.open_ticket("first")
    second = desk.open_ticket("second")
    urgent = desk.open_ticket("third")
    with desk.db() as session:
        ticket = session.get(Ticket, urgent)
        assert ticket is not None
        ticket.priority = 3
        session.commit()
    desk.sign_in("ana@kestrel.example")

    items = desk.client.get("/desk/api/queue").json()["items"]

    assert [item["ticket"]["id"] for item in items] == [urgent, first, second]
    assert items[0]["ticket"]["priority_label"] == "Urgent"


def test_admins_see_every_team_and_editors_are_refused(desk: Desk) -> None:
    mine = desk.open_ticket("hello")
    theirs = desk.open_ticket("invoice question", business=True)
    desk.sign_in("root@kestrel.example", team="", role="admin")
    ids = {item["ticket"]["id"] for item in desk.client.get("/desk/api/queue").json()["items"]}
    assert ids == {mine, theirs}

    desk.sign_in("ed@kestrel.example", role="editor")
    assert desk.client.get("/desk").status_code == 403
    assert desk.client.get(f"/desk/tickets/{mine}").status_code == 403
    assert desk.client.get("/desk/events").status_code == 403


def test_pages_need_a_complete_session(desk: Desk) -> None:
    ticket_id = desk.open_ticket("hello")

    page = desk.client.get("/desk", follow_redirects=False)
    api = desk.client.get("/desk/api/queue")
    action = desk.client.post(f"/desk/api/tickets/{ticket_id}/claim", json={})

    assert page.status_code == 303 and page.headers["location"].startswith("/desk/login")
    assert api.status_code == 401
    assert action.status_code == 401
    assert desk.ticket(ticket_id).status == "queued"


# -- authorization between teams ---------------------------------------------------------------


def test_other_teams_tickets_are_404_on_every_page_and_action(desk: Desk) -> None:
    theirs = desk.open_ticket("invoice question", business=True)
    ana = desk.sign_in("ana@kestrel.example", role="lead")  # a lead may also assign
    missing = 987654

    for ticket_id in (theirs, missing):
        assert desk.client.get(f"/desk/tickets/{ticket_id}").status_code == 404
        for path in ("", "/suggestions", "/audit.json", "/audit.csv"):
            response = desk.client.get(f"/desk/api/tickets/{ticket_id}{path}")
            assert response.status_code == 404, path
    bodies = {}
    for action in ACTIONS:
        body = {"text": "hi", "note": "x", "team_id": 1, "assignee_id": ana.id}
        response = desk.post(ana, theirs, action, **body)
        unknown = desk.post(ana, missing, action, **body)
        assert response.status_code == 404, action
        assert unknown.status_code == 404, action
        bodies[action] = (response.json(), unknown.json())
    assert all(theirs_body == missing_body for theirs_body, missing_body in bodies.values())
    assert desk.ticket(theirs).status == "queued"
    assert desk.audit(theirs) == ["ticket.created"]


def test_a_plain_agent_learns_nothing_about_other_teams_tickets(desk: Desk) -> None:
    theirs = desk.open_ticket("invoice question", business=True)
    ben = desk.sign_in("ben@kestrel.example")

    for action in ACTIONS:
        body = {"text": "hi", "note": "x", "team_id": 1, "assignee_id": ben.id}
        response = desk.post(ben, theirs, action, **body)
        unknown = desk.post(ben, 987654, action, **body)
        assert response.status_code == unknown.status_code, action
        assert response.json() == unknown.json(), action
        assert response.status_code in (403, 404), action  # assign: "only a team lead"
    assert desk.audit(theirs) == ["ticket.created"]


# -- the actions -------------------------------------------------------------------------------


def test_claim_reply_note_resolve_write_audit_events(desk: Desk, fake_rasa: Any) -> None:
    ticket_id = desk.open_ticket("my lamp arrived broken")
    ana = desk.sign_in("ana@kestrel.example")
    conversation_id = desk.ticket(ticket_id).conversation_id

    claimed = desk.post(ana, ticket_id, "claim")
    replied = desk.post(ana, ticket_id, "reply", text="Sorry to hear that! Sending a new one.")
    noted = desk.post(ana, ticket_id, "note", text="Replacement ordered, ORD-1")
    resolved = desk.post(ana, ticket_id, "resolve", note="Replacement shipped")

    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["ticket"]["status"] == "assigned"
    assert claimed.json()["messages"][0]["role"] == "system"
    assert replied.status_code == 200
    assert replied.json()["message"]["text"] == "Sorry to hear that! Sending a new one."
    assert replied.json()["message"]["role"] == "agent"
    assert noted.json()["message"]["note"] is True
    assert resolved.json()["ticket"]["status"] == "resolved"
    assert resolved.json()["ticket"]["resolution_note"] == "Replacement shipped"
    assert desk.audit(ticket_id) == [
        "ticket.created",
        "ticket.assigned",
        "ticket.message",
        "ticket.note",
        "ticket.resolved",
    ]
    told = [events[0]["event"] for sender, events in fake_rasa.tracker_events]
    assert told == ["pause", "resume"]
    assert {sender for sender, _ in fake_rasa.tracker_events} == {conversation_id}


def test_hand_back_gives_the_conversation_to_the_bot(desk: Desk) -> None:
    ticket_id = desk.open_ticket("hello")
    ana = desk.sign_in("ana@kestrel.example")
    desk.post(ana, ticket_id, "claim")

    response = desk.post(ana, ticket_id, "hand-back")

    assert response.status_code == 200
    assert response.json()["ticket"]["status"] == "handed_back"
    assert desk.audit(ticket_id)[-1] == "ticket.handed_back"


def test_transfer_moves_the_ticket_out_of_the_agents_reach(desk: Desk) -> None:
    ticket_id = desk.open_ticket("I need a business invoice")
    ana = desk.sign_in("ana@kestrel.example")
    target = desk.team_id(OTHER_TEAM)

    response = desk.post(ana, ticket_id, "transfer", team_id=target, note="B2B customer")

    assert response.status_code == 200
    assert response.json()["ticket"]["team_id"] == target
    assert response.json()["ticket"]["status"] == "queued"
    assert desk.audit(ticket_id)[-1] == "ticket.transferred"
    assert desk.client.get(f"/desk/tickets/{ticket_id}").status_code == 404
    audit = desk.client.get(f"/desk/api/tickets/{ticket_id}/audit.json")
    assert audit.status_code == 404


def test_transfer_and_assign_refuse_bad_input_in_one_sentence(desk: Desk) -> None:
    ticket_id = desk.open_ticket("hello")
    ana = desk.sign_in("ana@kestrel.example")

    no_team = desk.post(ana, ticket_id, "transfer", team_id="north")
    same_team = desk.post(ana, ticket_id, "transfer", team_id=desk.team_id(DEFAULT_TEAM_SLUG))
    not_lead = desk.post(ana, ticket_id, "assign", assignee_id=ana.id)

    assert no_team.status_code == 422
    assert no_team.json() == {"error": "Choose the team to transfer to."}
    assert same_team.status_code == 422
    assert same_team.json() == {"error": "Choose another team to transfer to."}
    assert not_lead.status_code == 403


def test_a_lead_assigns_a_ticket(desk: Desk) -> None:
    ticket_id = desk.open_ticket("hello")
    ben = desk.sign_in("ben@kestrel.example")
    lea = desk.sign_in("lea@kestrel.example", role="lead")

    response = desk.post(lea, ticket_id, "assign", assignee_id=ben.id)

    assert response.status_code == 200
    assert response.json()["ticket"]["assignee_id"] == ben.id
    assert desk.audit(ticket_id)[-1] == "ticket.assigned"


def test_second_claim_is_told_who_has_it(desk: Desk) -> None:
    ticket_id = desk.open_ticket("hello")
    ana = desk.sign_in("ana@kestrel.example")
    ben = desk.sign_in("ben@kestrel.example")
    assert desk.post(ana, ticket_id, "claim").status_code == 200

    response = desk.post(ben, ticket_id, "claim")

    assert response.status_code == 409
    assert response.json() == {"error": "Ana has already claimed this ticket."}


def test_a_reply_to_a_resolved_ticket_is_refused_with_a_clear_message(desk: Desk) -> None:
    ticket_id = desk.open_ticket("hello")
    ana = desk.sign_in("ana@kestrel.example")
    desk.post(ana, ticket_id, "claim")
    desk.post(ana, ticket_id, "resolve", note="done")
    before = desk.message_count(ticket_id)

    response = desk.post(ana, ticket_id, "reply", text="one more thing")

    assert response.status_code == 409
    assert response.json()["error"].startswith("This ticket is closed.")
    assert desk.message_count(ticket_id) == before


def test_a_100_kb_reply_is_refused_and_nothing_is_stored(desk: Desk, settings: Settings) -> None:
    ticket_id = desk.open_ticket("hello")
    ana = desk.sign_in("ana@kestrel.example")
    desk.post(ana, ticket_id, "claim")
    before = desk.message_count(ticket_id)
    audit_before = desk.audit(ticket_id)

    huge = desk.post(ana, ticket_id, "reply", text="x" * 100_000)
    just_over = desk.post(ana, ticket_id, "reply", text="y" * (settings.max_agent_reply_chars + 1))
    long_note = desk.post(ana, ticket_id, "note", text="z" * 100_000)

    assert huge.status_code == 413
    assert "too long" in huge.json()["error"]
    assert just_over.status_code == 422
    assert just_over.json()["error"] == (
        f"That message is too long ({settings.max_agent_reply_chars + 1} characters; "
        f"the limit is {settings.max_agent_reply_chars})."
    )
    assert long_note.status_code == 413
    assert desk.message_count(ticket_id) == before
    assert desk.audit(ticket_id) == audit_before


def test_an_empty_reply_is_refused(desk: Desk) -> None:
    ticket_id = desk.open_ticket("hello")
    ana = desk.sign_in("ana@kestrel.example")
    desk.post(ana, ticket_id, "claim")

    response = desk.post(ana, ticket_id, "reply", text="   ")

    assert response.status_code == 422
    assert response.json() == {"error": "Type a message first."}


# -- request forgery ---------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"X-CSRF-Token": "wrong-token"}])
def test_state_changes_without_the_right_csrf_token_are_refused(
    desk: Desk, headers: dict[str, str]
) -> None:
    ticket_id = desk.open_ticket("hello")
    desk.sign_in("ana@kestrel.example")

    for action in ACTIONS:
        response = desk.client.post(
            f"/desk/api/tickets/{ticket_id}/{action}", json={"text": "hi"}, headers=headers
        )
        assert response.status_code == 403, action
    assert desk.ticket(ticket_id).status == "queued"
    assert desk.audit(ticket_id) == ["ticket.created"]


def test_a_foreign_origin_is_refused_even_with_the_token(desk: Desk) -> None:
    ticket_id = desk.open_ticket("hello")
    ana = desk.sign_in("ana@kestrel.example")

    response = desk.client.post(
        f"/desk/api/tickets/{ticket_id}/claim",
        json={},
        headers={"X-CSRF-Token": ana.csrf, "Origin": "https://evil.example"},
    )

    assert response.status_code == 403
    assert desk.ticket(ticket_id).status == "queued"


def test_plain_form_posts_work_and_redirect_back(desk: Desk) -> None:
    ticket_id = desk.open_ticket("hello")
    ana = desk.sign_in("ana@kestrel.example")

    claimed = desk.client.post(
        f"/desk/api/tickets/{ticket_id}/claim",
        data={"csrf_token": ana.csrf},
        headers={"Accept": "text/html"},
        follow_redirects=False,
    )
    replied = desk.client.post(
        f"/desk/api/tickets/{ticket_id}/reply",
        data={"csrf_token": ana.csrf, "text": "Hello from a form"},
        headers={"Accept": "text/html"},
        follow_redirects=False,
    )
    forged = desk.client.post(
        f"/desk/api/tickets/{ticket_id}/note",
        data={"text": "no token"},
        headers={"Accept": "text/html"},
        follow_redirects=False,
    )

    assert claimed.status_code == 303
    assert claimed.headers["location"] == f"/desk/tickets/{ticket_id}"
    assert replied.status_code == 303
    assert forged.status_code == 403
    assert desk.audit(ticket_id) == ["ticket.created", "ticket.assigned", "ticket.message"]


def test_the_live_channel_refuses_a_foreign_origin(desk: Desk) -> None:
    desk.sign_in("ana@kestrel.example")

    response = desk.client.get("/desk/events", headers={"Origin": "https://evil.example"})

    assert response.status_code == 403


def test_the_live_channel_needs_a_session(desk: Desk) -> None:
    response = desk.client.get("/desk/events", follow_redirects=False)

    assert response.status_code in (303, 401)


# -- the ticket page ---------------------------------------------------------------------------


def test_html_in_customer_messages_is_shown_as_text(desk: Desk) -> None:
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    ticket_id = desk.open_ticket(
        hostile, turns=[{"text": hostile, "intent": "ask_question", "confidence": 0.4}]
    )
    desk.sign_in("ana@kestrel.example")

    page = desk.client.get(f"/desk/tickets/{ticket_id}")

    assert page.status_code == 200
    assert hostile not in page.text
    assert "<img src=x" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
    assert "onerror=alert(1)&gt;" in page.text
    assert "<script>" not in page.text  # no inline scripts at all
    assert desk.client.get(f"/desk/api/tickets/{ticket_id}").json()["transcript"][0]["text"] == (
        hostile
    )


def test_the_ticket_page_shows_the_whole_context(desk: Desk) -> None:
    earlier = desk.open_ticket("my invoice is wrong", business=True)
    ana_b = desk.sign_in("kari@kestrel.example", team=OTHER_TEAM)
    desk.post(ana_b, earlier, "claim")
    desk.post(ana_b, earlier, "resolve", note="Credit note CN-77 issued")
    context = {
        "turns": [
            {
                "text": "where is ORD-100120?",
                "intent": "order_status",
                "confidence": 0.912,
                "entities": [{"entity": "order_number", "value": "ORD-100120"}],
            }
        ],
        "knowledge": {
            "attempts": [{"query": "delivery time", "outcome": "answered", "article_id": "a1"}],
            "articles_offered": ["delivery-times"],
            "articles_answered": ["delivery-times"],
        },
    }
    ticket_id = desk.open_ticket("where is ORD-100120?", business=True, **context)
    with desk.db() as session:
        record_event(
            session,
            actor="action_server",
            action="kb.feedback",
            conversation_id=desk.ticket(ticket_id).conversation_id,
            details={"article_id": "delivery-times", "outcome": "answered", "helpful": False},
        )
        session.commit()

    page = desk.client.get(f"/desk/tickets/{ticket_id}")
    data = desk.client.get(f"/desk/api/tickets/{ticket_id}").json()

    assert page.status_code == 200
    html = page.text
    assert "Unverified" in html
    assert "Ingrid Halvorsen" in html and "Fjord Architects GmbH" in html and "ACC-20001" in html
    assert "order_status" in html and "91 %" in html and "order_number=ORD-100120" in html
    assert "delivery time" in html and "not helpful" in html
    assert "Credit note CN-77 issued" in html  # the earlier ticket's resolution note
    assert f'href="/desk/tickets/{earlier}"' in html
    assert "ticket.created" in html  # the audit log
    assert data["customer"]["verified"] is False
    assert data["knowledge"]["feedback"][0]["helpful"] is False
    assert data["earlier"][0]["tickets"][0]["id"] == earlier
    assert data["ticket"]["team_name"] == "Key Accounts DACH"


def test_canned_replies_are_seeded_once_and_offered_by_team(desk: Desk) -> None:
    with desk.db() as session:
        assert load_demo_canned_replies(session) == 0  # seeded with the demo data already
        shortcuts = set(session.scalars(select(CannedReply.shortcut)))
    assert shortcuts == {spec.shortcut for spec in CANNED_REPLIES}
    ticket_id = desk.open_ticket("hello")
    desk.sign_in("ana@kestrel.example")

    replies = desk.client.get(f"/desk/api/tickets/{ticket_id}").json()["canned_replies"]

    names = {reply["shortcut"] for reply in replies}
    assert {"hello", "return-label"} <= names  # shared and Customer Care's own
    assert "account-manager" not in names  # another team's


# -- suggested articles ------------------------------------------------------------------------


@dataclass
class FakeHit:
    article_id: str
    title: str
    score: float
    summary: str


class FakeKnowledge:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.queries: list[str] = []

    def search(self, query: str, limit: int = 3, *, audience: str | None = None) -> list[FakeHit]:
        if self.fail:
            raise RuntimeError("index exploded")
        self.queries.append(query)
        return [
            FakeHit("returns-start-a-return", "How do I return an item?", 0.8, "Within 30 days.")
        ]

    def out_of_scope_articles(self) -> list[object]:
        return []


def test_suggested_articles_search_the_latest_customer_messages(desk: Desk) -> None:
    ticket_id = desk.open_ticket("hi", "can I send back a lamp I bought?")
    fake = FakeKnowledge()
    desk.client.app.state.knowledge_base = fake  # type: ignore[attr-defined]
    desk.sign_in("ana@kestrel.example")

    data = desk.client.get(f"/desk/api/tickets/{ticket_id}/suggestions").json()

    assert fake.queries == ["can I send back a lamp I bought?"]
    assert data["available"] is True
    article = data["articles"][0]
    assert article["url"] == "/articles/returns-start-a-return"
    assert article["insert_text"].startswith("Within 30 days.")
    assert article["insert_text"].endswith("/articles/returns-start-a-return")


@pytest.mark.parametrize("broken", [True, False])
def test_suggestions_unavailable_never_break_the_page(desk: Desk, broken: bool) -> None:
    ticket_id = desk.open_ticket("can I send back a lamp I bought?")
    if broken:
        desk.client.app.state.knowledge_base = FakeKnowledge(fail=True)  # type: ignore[attr-defined]
    # else: the real live index, never built in this test's var/ folder
    desk.sign_in("ana@kestrel.example")

    data = desk.client.get(f"/desk/api/tickets/{ticket_id}/suggestions")
    page = desk.client.get(f"/desk/tickets/{ticket_id}")

    assert data.status_code == 200
    assert data.json() == {"available": False, "articles": []}
    assert page.status_code == 200


# -- audit export ------------------------------------------------------------------------------


def test_audit_csv_escapes_formula_cells(desk: Desk) -> None:
    ticket_id = desk.open_ticket("hello")
    ana = desk.sign_in("ana@kestrel.example")
    desk.post(ana, ticket_id, "claim")
    desk.post(ana, ticket_id, "resolve", note='=HYPERLINK("https://evil.example","click")')

    response = desk.client.get(f"/desk/api/tickets/{ticket_id}/audit.csv")
    as_json = desk.client.get(f"/desk/api/tickets/{ticket_id}/audit.json").json()

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["action"] for row in rows] == [e["action"] for e in as_json]
    assert rows[-1]["note"] == '\'=HYPERLINK("https://evil.example","click")'
    for row in rows:
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row.values())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+33 1 23", "'+33 1 23"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=x", "'\t=x"),
        ("plain", "plain"),
        (None, ""),
        (12, "12"),
    ],
)
def test_csv_safe(value: Any, expected: str) -> None:
    assert csv_safe(value) == expected


def test_audit_csv_text_has_a_header_row() -> None:
    assert audit_csv_text([]).splitlines() == [
        "id,at,actor,actor_name,action,ticket_id,note,details"
    ]


# -- the live channel --------------------------------------------------------------------------


def test_event_visibility_follows_teams_and_roles() -> None:
    created = {"type": "ticket.created", "ticket_id": 1, "team_id": 7}

    assert event_visible(created, role="agent", team_ids={7})
    assert not event_visible(created, role="agent", team_ids={8})
    assert not event_visible({**created, "team_id": None}, role="lead", team_ids={8})
    assert not event_visible({**created, "team_id": True}, role="agent", team_ids={1})
    assert event_visible(created, role="admin", team_ids=set())
    assert not event_visible(created, role="editor", team_ids={7})


def test_a_ticket_moved_to_another_team_is_removed_without_saying_where() -> None:
    event_filter = DeskEventFilter(role="agent", team_ids={1}, known_ticket_ids=[5])

    moved = event_filter({"type": "ticket.transferred", "ticket_id": 5, "team_id": 2})
    again = event_filter({"type": "ticket.message", "ticket_id": 5, "team_id": 2})
    stranger = event_filter({"type": "ticket.created", "ticket_id": 6, "team_id": 2})

    assert moved == {"type": "ticket.removed", "ticket_id": 5}
    assert again is None and stranger is None


async def test_the_stream_delivers_own_team_events_only() -> None:
    broker = InProcessBroker()
    stream = desk_event_stream(broker, DeskEventFilter(role="agent", team_ids={1}))

    ready = await anext(stream)
    await broker.publish("desk", {"type": "ticket.created", "ticket_id": 9, "team_id": 2})
    await broker.publish("desk", {"type": "ticket.created", "ticket_id": 10, "team_id": 1})
    delivered = await asyncio.wait_for(anext(stream), timeout=2)
    await stream.aclose()

    assert ready.event == "ready"
    assert delivered.event == "ticket.created"
    assert json.loads(str(delivered.data))["ticket_id"] == 10
    assert broker.subscriber_count("desk") == 0


async def test_the_stream_ends_when_the_session_does() -> None:
    broker = InProcessBroker()
    checks: list[int] = []

    async def session_check() -> tuple[str, set[int]] | None:
        checks.append(1)
        return ("agent", {1}) if len(checks) < 2 else None

    stream = desk_event_stream(
        broker,
        DeskEventFilter(role="agent", team_ids={1}),
        session_check=session_check,
        recheck_seconds=0.01,
    )
    assert (await anext(stream)).event == "ready"
    ended = await asyncio.wait_for(anext(stream), timeout=2)

    assert ended.event == "signed_out"
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    assert broker.subscriber_count("desk") == 0
