"""Attachments through the bot service: uploads both ways, downloads, and what the chat shows."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from anyio.from_thread import BlockingPortal
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import WebSocketTestSession

from bot.accounts.demo import DEMO_BUSINESS_TEAM, load_demo_data
from bot.accounts.models import Team
from bot.agents.service import create_agent, start_session
from bot.conversations import attachments as files
from bot.conversations.models import Attachment, Message
from bot.conversations.service import add_message
from bot.handoff import service as tickets
from bot.handoff.desk import Desk
from bot.handoff.models import Ticket
from bot.realtime.broker import DESK_TOPIC, conversation_topic
from bot.web.auth import SESSION_COOKIE

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
PDF = b"%PDF-1.7\n" + b"1 0 obj << >> endobj\n" * 40 + b"%%EOF\n"
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + b"\x00" * 64
PASSWORD = "correct-horse-battery"


# -- helpers ----------------------------------------------------------------------------------


def _sessions(client: TestClient) -> sessionmaker[Session]:
    return client.app.state.session_factory  # type: ignore[attr-defined]


def _new_conversation(client: TestClient) -> tuple[str, str]:
    created = client.post("/api/conversations").json()
    return created["token"], created["conversation_id"]


def _upload(
    client: TestClient,
    token: str | None,
    content: Any,
    *,
    content_type: str = "image/png",
    filename: str = "parcel.png",
) -> Any:
    headers = {"Content-Type": content_type, "X-Filename": quote(filename)}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.post("/api/conversations/attachments", content=content, headers=headers)


def _stored_files(client: TestClient) -> list[Path]:
    root: Path = client.app.state.settings.attachments_dir  # type: ignore[attr-defined]
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


def _attachment_rows(client: TestClient) -> int:
    with _sessions(client)() as session:
        return int(session.scalar(select(func.count(Attachment.id))) or 0)


def _hello(ws: WebSocketTestSession, token: str) -> list[dict[str, Any]]:
    ws.send_json({"type": "hello", "token": token})
    frame = ws.receive_json()
    assert frame["type"] == "history"
    return list(frame["messages"])


def _next_message(ws: WebSocketTestSession, limit: int = 10) -> dict[str, Any]:
    for _ in range(limit):
        frame = ws.receive_json()
        if frame["type"] == "message":
            return dict(frame)
    raise AssertionError("no message frame arrived")


class ShownMessages:
    """What chat.js shows: history replaces the log, pushed messages with known ids are skipped."""

    def __init__(self) -> None:
        self.ids: list[int] = []

    def take(self, frame: dict[str, Any]) -> None:
        if frame["type"] == "history":
            self.ids = []
            for message in frame["messages"]:
                self.take({"type": "message", **message})
        elif frame["type"] == "message" and frame.get("id") not in (None, *self.ids):
            self.ids.append(frame["id"])


@dataclass
class SignedInAgent:
    id: int
    csrf: str


@pytest.fixture(autouse=True)
def _rasa_takes_tracker_events(fake_rasa: Any) -> None:
    """Desk actions tell Rasa's tracker (pause/resume); the fake accepts those calls."""
    answer_turn = fake_rasa.handler

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/tracker/events"):
            return httpx.Response(200, json={})
        return answer_turn(request)

    fake_rasa.handler = handler  # before the client fixture builds its transport


@pytest.fixture
def demo(client: TestClient) -> None:
    with _sessions(client)() as session:
        load_demo_data(session)


@pytest.fixture
def sign_in(client: TestClient, demo: None) -> Callable[[str], SignedInAgent]:
    def signed_in(team: str) -> SignedInAgent:
        with _sessions(client)() as session:
            agent = create_agent(
                session,
                email=f"alex.{team}@kestrel.example",
                name="Alex Morgan",
                password=PASSWORD,
                team_slugs=[team],
            )
            new = start_session(
                session,
                agent=agent,
                lifetime=dt.timedelta(hours=1),
                second_factor_pending=False,
            )
        client.cookies.set(SESSION_COOKIE, new.token)
        return SignedInAgent(id=agent.id, csrf=new.row.csrf_token)

    return signed_in


def _open_ticket(client: TestClient, conversation_id: str, team_slug: str | None = None) -> int:
    with _sessions(client)() as session:
        ticket = tickets.open_ticket(
            session,
            conversation_id=conversation_id,
            reason_code="customer_request",
            reason="customer asked for a human",
            context={},
        ).ticket
        if team_slug is not None:
            team = session.scalars(select(Team).where(Team.slug == team_slug)).one()
            ticket.team_id = team.id
            session.commit()
        return ticket.id


def _in_app(client: TestClient) -> BlockingPortal:
    """The app's event loop (the broker and the desk live there)."""
    assert client.portal is not None, "use the client as a context manager"
    return client.portal


def _desk(client: TestClient) -> Desk:
    return client.app.state.desk  # type: ignore[attr-defined]


def _agent_upload(
    client: TestClient, ticket_id: int, agent: SignedInAgent | None, content: bytes, **extra: str
) -> Any:
    headers = {"Content-Type": "application/pdf", "X-Filename": quote("returns label.pdf")}
    if agent is not None:
        headers["X-CSRF-Token"] = agent.csrf
    headers.update(extra)
    return client.post(
        f"/desk/api/tickets/{ticket_id}/attachments", content=content, headers=headers
    )


@pytest.fixture
def published(client: TestClient) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every event published on the app's broker, in order."""
    broker = client.app.state.broker  # type: ignore[attr-defined]
    seen: list[tuple[str, dict[str, Any]]] = []
    original = broker.publish

    async def recording(topic: str, event: dict[str, Any]) -> None:
        seen.append((topic, event))
        await original(topic, event)

    broker.publish = recording
    yield seen
    broker.publish = original


# -- customer uploads ---------------------------------------------------------------------------


def test_customer_upload_is_stored_shown_and_downloadable(client: TestClient) -> None:
    token, conversation_id = _new_conversation(client)

    response = _upload(client, token, PNG, filename="damaged parcel.png")

    assert response.status_code == 201
    message = response.json()
    assert message["role"] == "customer"
    assert message["text"] == "📎 damaged parcel.png"
    (info,) = message["attachments"]
    assert info["filename"] == "damaged parcel.png"
    assert info["content_type"] == "image/png"
    assert info["size_bytes"] == len(PNG)
    assert info["url"].startswith(f"/attachments/{info['id']}?exp=")
    assert token not in info["url"]

    digest = hashlib.sha256(PNG).hexdigest()
    root: Path = client.app.state.settings.attachments_dir  # type: ignore[attr-defined]
    assert (root / digest[:2] / digest).read_bytes() == PNG
    with _sessions(client)() as session:
        row = session.get(Attachment, info["id"])
        assert row is not None
        assert (row.conversation_id, row.message_id, row.uploaded_by, row.sha256) == (
            conversation_id,
            message["id"],
            "customer",
            digest,
        )

    download = client.get(info["url"])
    assert download.status_code == 200
    assert download.content == PNG
    assert download.headers["content-type"] == "image/png"
    assert download.headers["content-disposition"].startswith("inline;")
    assert download.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in download.headers["content-security-policy"]
    assert "default-src 'none'" in download.headers["content-security-policy"]


def test_the_history_shows_the_attachment_with_a_fresh_link_and_a_note(
    client: TestClient,
) -> None:
    token, _ = _new_conversation(client)
    uploaded = _upload(client, token, PDF, content_type="", filename="invoice.pdf").json()

    with client.websocket_connect("/ws/chat") as ws:
        history = _hello(ws, token)

    assert history[0]["id"] == uploaded["id"]
    (info,) = history[0]["attachments"]
    assert info["filename"] == "invoice.pdf"
    assert info["content_type"] == "application/pdf"  # sniffed, although none was declared
    download = client.get(info["url"])
    assert download.status_code == 200
    assert download.headers["content-disposition"].startswith("attachment;")
    # The bot can't read files, and says so honestly; nothing went to Rasa.
    assert history[1]["role"] == "system"
    assert history[1]["text"] == files.KEPT_FOR_A_PERSON


def test_upload_in_an_open_ticket_tells_the_desk(
    client: TestClient, demo: None, published: list[tuple[str, dict[str, Any]]], fake_rasa: Any
) -> None:
    token, conversation_id = _new_conversation(client)
    ticket_id = _open_ticket(client, conversation_id)

    message = _upload(client, token, PNG).json()

    desk_events = [event for topic, event in published if topic == DESK_TOPIC]
    (event,) = desk_events
    assert event["type"] == "ticket.message"
    assert event["ticket_id"] == ticket_id
    assert event["message"]["id"] == message["id"]
    (info,) = event["message"]["attachments"]
    assert info["url"] == f"/desk/attachments/{info['id']}"
    pushed = [event for topic, event in published if topic == conversation_topic(conversation_id)]
    assert [event["id"] for event in pushed] == [message["id"]]  # no bot note: a person will see
    assert [(a["id"], a["url"]) for a in pushed[0]["attachments"]] == [(info["id"], "")]
    assert fake_rasa.sent == []


def test_too_big_is_refused_politely_and_nothing_is_stored(client: TestClient) -> None:
    token, _ = _new_conversation(client)
    limit = client.app.state.settings.max_attachment_bytes  # type: ignore[attr-defined]
    too_big = PNG + b"\x00" * (limit - len(PNG) + 1)

    declared = _upload(client, token, too_big)  # Content-Length says it at once
    streamed = _upload(client, token, (part for part in (too_big[:1000], too_big[1000:])))

    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json() == {"detail": files.TOO_LARGE.format(limit="5 MB")}
    assert _stored_files(client) == []
    assert _attachment_rows(client) == 0


def test_a_conversation_holds_a_bounded_number_of_customer_files(client: TestClient) -> None:
    service = client.app.state.attachments  # type: ignore[attr-defined]
    service.max_customer_files = 2
    token, conversation_id = _new_conversation(client)
    other_token, _ = _new_conversation(client)

    first = _upload(client, token, PNG + b"1")
    second = _upload(client, token, PNG + b"2")
    third = _upload(client, token, PNG + b"3")

    assert first.status_code == second.status_code == 201
    assert third.status_code == 409
    assert third.json() == {"detail": files.TOO_MANY.format(limit=2)}
    assert _attachment_rows(client) == 2
    assert len(_stored_files(client)) == 2  # refused before any byte was stored
    assert _upload(client, other_token, PNG + b"4").status_code == 201  # per conversation
    # The check under the row lock, for two uploads that both passed the early one.
    with _sessions(client)() as session, pytest.raises(files.TooManyAttachmentsError):
        files.record_customer_upload(
            session,
            conversation_id=conversation_id,
            stored=files.StoredFile(sha256="0" * 64, size_bytes=5, content_type="image/png"),
            filename="late.png",
            max_files=2,
        )
    assert _attachment_rows(client) == 3


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (GIF, "image/gif"),
        (PNG, "image/jpeg"),  # declared type and content disagree
        (b"<html><script>alert(1)</script></html>" * 3, "image/png"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script/></svg>", "image/svg+xml"),
        (PNG, "multipart/form-data; boundary=x"),
    ],
)
def test_wrong_types_are_refused(client: TestClient, content: bytes, content_type: str) -> None:
    token, _ = _new_conversation(client)

    response = _upload(client, token, content, content_type=content_type)

    assert response.status_code == 415
    assert response.json() == {"detail": files.UNSUPPORTED_TYPE}
    assert _stored_files(client) == []
    assert _attachment_rows(client) == 0


def test_an_empty_file_is_refused(client: TestClient) -> None:
    token, _ = _new_conversation(client)
    response = _upload(client, token, b"")
    assert response.status_code == 400
    assert response.json() == {"detail": files.EMPTY_FILE}
    assert _attachment_rows(client) == 0


@pytest.mark.parametrize("authorization", [None, "Bearer forged-token", "Basic abc", "Bearer "])
def test_a_forged_or_missing_chat_token_is_refused(
    client: TestClient, authorization: str | None
) -> None:
    _new_conversation(client)
    headers = {"Content-Type": "image/png"}
    if authorization is not None:
        headers["Authorization"] = authorization

    response = client.post("/api/conversations/attachments", content=PNG, headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert _stored_files(client) == []


def test_path_parts_and_html_in_the_name_are_removed(client: TestClient) -> None:
    token, _ = _new_conversation(client)

    message = _upload(
        client, token, PNG, filename='../../etc/<img src=x onerror="alert(1)">.png'
    ).json()

    filename = message["attachments"][0]["filename"]
    assert not set(filename) & set('<>"/\\')
    assert filename.endswith(".png")
    assert message["text"] == f"📎 {filename}"
    assert all(path.name != ".png" for path in _stored_files(client))


# -- signed downloads ---------------------------------------------------------------------------


def _params(url: str) -> tuple[str, dict[str, str]]:
    path, _, query = url.partition("?")
    return path, dict(part.split("=", 1) for part in query.split("&"))


def test_downloads_need_a_good_unexpired_signature(client: TestClient) -> None:
    token, _ = _new_conversation(client)
    first = _upload(client, token, PNG).json()["attachments"][0]
    second = _upload(client, token, PDF, content_type="application/pdf").json()["attachments"][0]
    path, params = _params(first["url"])
    signer = client.app.state.attachments.signer  # type: ignore[attr-defined]
    expired = 1_000_000_000

    assert client.get(first["url"]).status_code == 200
    refused = [
        path,  # no signature at all
        f"{path}?exp={params['exp']}",
        f"{path}?exp={params['exp']}&sig=not-the-signature",
        f"{path}?exp={int(params['exp']) + 60}&sig={params['sig']}",  # longer life
        f"{path}?exp=soon&sig={params['sig']}",
        f"/attachments/{second['id']}?exp={params['exp']}&sig={params['sig']}",  # other file
        f"{path}?exp={expired}&sig={signer.signature(first['id'], expired)}",  # expired
    ]
    for url in refused:
        response = client.get(url)
        assert response.status_code == 403, url
        assert PNG not in response.content


def test_a_fresh_link_is_given_only_for_the_own_conversations_files(client: TestClient) -> None:
    token, _ = _new_conversation(client)
    other_token, _ = _new_conversation(client)
    mine = _upload(client, token, PNG).json()["attachments"][0]
    theirs = _upload(client, other_token, PDF, content_type="application/pdf").json()[
        "attachments"
    ][0]
    auth = {"Authorization": f"Bearer {token}"}

    fresh = client.get(f"/api/conversations/attachments/{mine['id']}", headers=auth)
    assert fresh.status_code == 200
    assert fresh.json()["filename"] == "parcel.png"
    assert client.get(fresh.json()["url"]).content == PNG

    assert (
        client.get(f"/api/conversations/attachments/{theirs['id']}", headers=auth).status_code
        == 404
    )
    assert client.get(f"/api/conversations/attachments/{mine['id']}").status_code == 401


def test_another_conversations_attachment_id_is_never_shown(client: TestClient) -> None:
    token, conversation_id = _new_conversation(client)
    other_token, _ = _new_conversation(client)
    theirs = _upload(client, other_token, PNG).json()["attachments"][0]
    with _sessions(client)() as session:  # a message naming a file of another conversation
        add_message(
            session,
            conversation_id=conversation_id,
            role="agent",
            text="see this",
            payload={"agent_name": "Alex Morgan", "attachments": [theirs["id"], 999_999]},
        )

    with client.websocket_connect("/ws/chat") as ws:
        (message,) = _hello(ws, token)

    assert message["text"] == "see this"
    assert message["attachments"] == []


# -- agent uploads and desk downloads ------------------------------------------------------------


def test_agent_uploads_for_a_ticket_of_their_team_and_downloads_it(
    client: TestClient, sign_in: Callable[[str], SignedInAgent]
) -> None:
    _, conversation_id = _new_conversation(client)
    ticket_id = _open_ticket(client, conversation_id)
    agent = sign_in("customer-care")

    response = _agent_upload(client, ticket_id, agent, PDF)

    assert response.status_code == 201
    body = response.json()
    assert body == {
        "id": body["id"],
        "filename": "returns label.pdf",
        "content_type": "application/pdf",
        "size_bytes": len(PDF),
        "url": f"/desk/attachments/{body['id']}",
    }
    with _sessions(client)() as session:
        row = session.get(Attachment, body["id"])
        assert row is not None
        assert (row.conversation_id, row.message_id, row.uploaded_by) == (
            conversation_id,
            None,
            f"agent:{agent.id}",
        )
    download = client.get(body["url"])
    assert download.status_code == 200
    assert download.content == PDF
    assert download.headers["content-disposition"].startswith("attachment;")


def test_agents_cannot_upload_to_or_read_another_teams_tickets(
    client: TestClient, sign_in: Callable[[str], SignedInAgent]
) -> None:
    token, conversation_id = _new_conversation(client)
    other_ticket = _open_ticket(client, conversation_id, team_slug=DEMO_BUSINESS_TEAM)
    customer_file = _upload(client, token, PNG).json()["attachments"][0]
    agent = sign_in("customer-care")

    assert _agent_upload(client, other_ticket, agent, PDF).status_code == 404
    assert _agent_upload(client, 999_999, agent, PDF).status_code == 404
    assert client.get(f"/desk/attachments/{customer_file['id']}").status_code == 404
    assert _attachment_rows(client) == 1  # only the customer's


def test_agent_upload_needs_the_csrf_token_and_a_session(
    client: TestClient, sign_in: Callable[[str], SignedInAgent]
) -> None:
    _, conversation_id = _new_conversation(client)
    ticket_id = _open_ticket(client, conversation_id)
    agent = sign_in("customer-care")

    assert _agent_upload(client, ticket_id, None, PDF).status_code == 403
    wrong = SignedInAgent(id=agent.id, csrf="guessed")
    assert _agent_upload(client, ticket_id, wrong, PDF).status_code == 403
    client.cookies.clear()
    assert _agent_upload(client, ticket_id, agent, PDF).status_code == 401
    assert _attachment_rows(client) == 0


def test_agent_upload_has_the_same_limits(
    client: TestClient, sign_in: Callable[[str], SignedInAgent]
) -> None:
    _, conversation_id = _new_conversation(client)
    ticket_id = _open_ticket(client, conversation_id)
    agent = sign_in("customer-care")

    assert _agent_upload(client, ticket_id, agent, GIF).status_code == 415
    assert _agent_upload(client, ticket_id, agent, b"").status_code == 400
    assert _agent_upload(client, ticket_id, agent, PDF + b"\x00" * 5_300_000).status_code == 413
    assert _stored_files(client) == []


# -- pushed to the customer's open page -----------------------------------------------------------


def test_agent_reply_with_attachment_reaches_the_open_chat_unprompted(
    client: TestClient, sign_in: Callable[[str], SignedInAgent]
) -> None:
    token, conversation_id = _new_conversation(client)
    ticket_id = _open_ticket(client, conversation_id)
    agent = sign_in("customer-care")
    label = _agent_upload(client, ticket_id, agent, PDF).json()
    desk = _desk(client)

    with client.websocket_connect("/ws/chat") as ws:
        assert _hello(ws, token) == []
        _in_app(client).call(functools.partial(desk.claim, ticket_id=ticket_id, agent_id=agent.id))
        joined = _next_message(ws)
        _in_app(client).call(
            functools.partial(
                desk.reply,
                ticket_id=ticket_id,
                agent_id=agent.id,
                text="Here is your returns label.",
                attachment_ids=(label["id"],),
            )
        )
        reply = _next_message(ws)

    assert joined["role"] == "system"
    assert joined["text"].startswith("Alex from our")
    assert reply["role"] == "agent"
    assert reply["agent_name"] == "Alex Morgan"
    assert reply["text"] == "Here is your returns label."
    (info,) = reply["attachments"]
    assert (info["id"], info["filename"], info["content_type"]) == (
        label["id"],
        "returns label.pdf",
        "application/pdf",
    )
    assert info["url"].startswith(f"/attachments/{label['id']}?exp=")  # signed for the customer
    client.cookies.clear()  # the customer has no desk session
    assert client.get(info["url"]).content == PDF


def test_history_and_pushed_messages_show_each_id_once(
    client: TestClient, sign_in: Callable[[str], SignedInAgent]
) -> None:
    token, conversation_id = _new_conversation(client)
    ticket_id = _open_ticket(client, conversation_id)
    agent = sign_in("customer-care")
    desk = _desk(client)
    broker = client.app.state.broker  # type: ignore[attr-defined]
    page = ShownMessages()
    _in_app(client).call(functools.partial(desk.claim, ticket_id=ticket_id, agent_id=agent.id))
    with _sessions(client)() as session:
        stored = session.scalars(
            select(Message).where(Message.conversation_id == conversation_id)
        ).all()
        (joined,) = stored
        late = {"type": "message", "id": joined.id, "role": "system", "text": joined.text}

    with client.websocket_connect("/ws/chat") as ws:
        ws.send_json({"type": "hello", "token": token})
        page.take(ws.receive_json())  # history: the "joined" notice
        # The same notice arriving late through the broker, as after a reconnect.
        _in_app(client).call(broker.publish, conversation_topic(conversation_id), late)
        page.take(_next_message(ws))
        _in_app(client).call(
            functools.partial(
                desk.reply, ticket_id=ticket_id, agent_id=agent.id, text="Hello, I'm Alex."
            )
        )
        page.take(_next_message(ws))
        ws.send_json({"type": "hello", "token": token})  # the page asks for the history again
        page.take(ws.receive_json())
        _in_app(client).call(broker.publish, conversation_topic(conversation_id), late)
        page.take(_next_message(ws))

    with _sessions(client)() as session:
        in_order = list(
            session.scalars(
                select(Message.id)
                .where(Message.conversation_id == conversation_id)
                .order_by(Message.id)
            )
        )
    assert len(in_order) == 2
    assert page.ids == in_order


def test_rating_buttons_after_resolve_store_the_rating(
    client: TestClient, sign_in: Callable[[str], SignedInAgent]
) -> None:
    token, conversation_id = _new_conversation(client)
    ticket_id = _open_ticket(client, conversation_id)
    agent = sign_in("customer-care")
    desk = _desk(client)
    _in_app(client).call(functools.partial(desk.claim, ticket_id=ticket_id, agent_id=agent.id))

    with client.websocket_connect("/ws/chat") as ws:
        _hello(ws, token)
        _in_app(client).call(
            functools.partial(desk.resolve, ticket_id=ticket_id, agent_id=agent.id, note="done")
        )
        resolved = _next_message(ws)
        five = resolved["buttons"][0]
        ws.send_json({"type": "button", "title": five["title"], "payload": five["payload"]})
        thanks = _next_message(ws)

    assert resolved["role"] == "system"
    assert [b["title"] for b in resolved["buttons"]] == ["5 ★", "4 ★", "3 ★", "2 ★", "1 ★"]
    assert thanks["text"] == tickets.RATED
    with _sessions(client)() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None and ticket.rating == 5


def test_the_desk_ticket_page_shows_files_both_ways(
    client: TestClient, sign_in: Callable[[str], SignedInAgent]
) -> None:
    token, conversation_id = _new_conversation(client)
    ticket_id = _open_ticket(client, conversation_id)
    photo = _upload(client, token, PNG, filename="<b>broken</b> lamp.png").json()
    agent = sign_in("customer-care")
    claimed = client.post(
        f"/desk/api/tickets/{ticket_id}/claim", headers={"X-CSRF-Token": agent.csrf}
    )
    assert claimed.status_code == 200, claimed.text
    label = _agent_upload(client, ticket_id, agent, PDF).json()
    reply = client.post(
        f"/desk/api/tickets/{ticket_id}/reply",
        json={"text": "Here is your returns label.", "attachment_ids": [label["id"]]},
        headers={"X-CSRF-Token": agent.csrf},
    )
    assert reply.status_code == 200, reply.text

    page = client.get(f"/desk/tickets/{ticket_id}").text

    photo_id = photo["attachments"][0]["id"]
    assert f'src="/desk/attachments/{photo_id}"' in page  # the customer's photo, inline
    assert "&lt;b&gt;" not in page and "<b>broken" not in page  # the name is sanitised
    assert f'href="/desk/attachments/{label["id"]}"' in page
    assert 'id="composer-file"' in page
    # The customer's side sees the agent's file with a signed link.
    with client.websocket_connect("/ws/chat") as ws:
        shown = _hello(ws, token)
    agent_files = [a for m in shown if m["role"] == "agent" for a in m.get("attachments", [])]
    assert [a["filename"] for a in agent_files] == ["returns label.pdf"]
    assert agent_files[0]["url"].startswith(f"/attachments/{label['id']}?")
