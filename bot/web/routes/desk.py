"""The agent desk: the queue, the ticket with its context, the actions and the live channel.

Routes (every one needs a complete desk session and the role agent, lead or admin;
editors get 403; tickets of other teams are 404, exactly like tickets that don't exist):

    GET  /desk                                  the queue of the agent's teams (live)
    GET  /desk/tickets/{id}                     the ticket: context, transcript, composer
    GET  /desk/events                           server-sent events (Origin checked)
    GET  /desk/api/queue                        the queue as JSON
    GET  /desk/api/tickets/{id}                 the ticket's context as JSON
    GET  /desk/api/tickets/{id}/suggestions     suggested knowledge-base articles
    GET  /desk/api/tickets/{id}/audit.json      the ticket's audit log
    GET  /desk/api/tickets/{id}/audit.csv       the same, as CSV (formula cells escaped)
    POST /desk/api/tickets/{id}/claim           take a queued ticket
    POST /desk/api/tickets/{id}/assign          a lead gives it to an agent (assignee_id)
    POST /desk/api/tickets/{id}/reply           text (and attachment_ids, optional)
    POST /desk/api/tickets/{id}/note            text (internal; the customer never sees it)
    POST /desk/api/tickets/{id}/transfer        team_id, note
    POST /desk/api/tickets/{id}/resolve         note
    POST /desk/api/tickets/{id}/hand-back       give the conversation back to the bot

POSTs take JSON or a form and need the session's CSRF token (``X-CSRF-Token`` or the
``csrf_token`` field). They answer JSON (``{"ticket": ..., "message": ...}``, or
``{"error": "<one sentence>"}`` with the ticket error's status); a plain HTML form
post (no JavaScript) is redirected back to the page instead.

The live channel forwards the broker's ``desk`` topic events (``ticket.created``,
``ticket.updated``, ``ticket.assigned``, ``ticket.transferred``, ``ticket.closed``,
``ticket.message``) whose ``team_id`` is one of the agent's teams (admins: all), as
SSE events named by their ``type``. A ticket the page was shown that moves to a team
the agent doesn't work becomes ``ticket.removed`` (its id only). ``ready`` opens every
connection (pages then re-read what they may have missed) and ``signed_out`` ends it
when the session is gone; a comment line every 15 s keeps proxies from closing it.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session, sessionmaker
from sse_starlette import EventSourceResponse, ServerSentEvent

from bot.agents import service as agents_service
from bot.agents.models import Agent, AgentSession, Role
from bot.conversations.models import Message, MessageRole
from bot.conversations.service import history
from bot.handoff import service as tickets
from bot.handoff.context import (
    AuditEntry,
    MessageView,
    QueueItem,
    TicketContext,
    TicketSummary,
    audit_entries,
    queue_items,
    queued_count,
    ticket_context,
)
from bot.handoff.desk import Desk
from bot.handoff.errors import InvalidTicketInputError, TicketNotFoundError
from bot.handoff.models import Ticket
from bot.realtime.broker import DESK_TOPIC, Broker
from bot.web.auth import (
    CSRF_FIELD,
    SESSION_COOKIE,
    CsrfDep,
    CurrentSessionDep,
    check_origin,
    require_roles,
)
from bot.web.deps import BrokerDep, SessionDep, SettingsDep, TemplatesDep
from bot.web.knowledge import ArticleSuggestion, suggest_articles

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/desk", tags=["desk"])

DESK_ROLES: tuple[str, ...] = (Role.AGENT.value, Role.LEAD.value, Role.ADMIN.value)
HEARTBEAT_SECONDS = 15
SESSION_RECHECK_SECONDS = 60.0
# A reply may hold max_agent_reply_chars characters; JSON escapes one as up to 12 bytes.
BODY_BYTES_PER_CHAR = 12
BODY_SLACK_BYTES = 16 * 1024
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
AUDIT_CSV_COLUMNS = ("id", "at", "actor", "actor_name", "action", "ticket_id", "note", "details")

DeskAgentDep = Annotated[Agent, Depends(require_roles(*DESK_ROLES))]


class RequestTooLargeError(InvalidTicketInputError):
    """The request body is far larger than any reply may be."""

    status_code = 413


# -- helpers -----------------------------------------------------------------------------------


def _desk(request: Request) -> Desk:
    desk: Desk = request.app.state.desk
    return desk


def _sessions(request: Request) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = request.app.state.session_factory
    return factory


def format_time(moment: dt.datetime | None) -> str:
    """A timestamp as the desk shows it: ``24 Nov 2026, 08:01 UTC`` (``—`` for none)."""
    if moment is None:
        return "—"
    return moment.astimezone(dt.UTC).strftime("%d %b %Y, %H:%M UTC")


def _page_context(agent: Agent, row: AgentSession, **values: Any) -> dict[str, Any]:
    return {
        "agent": agent,
        "csrf_token": row.csrf_token,
        "when": format_time,
        "is_lead": agent.role in (Role.LEAD.value, Role.ADMIN.value),
        **values,
    }


async def check_body_size(request: Request, settings: SettingsDep) -> None:
    """Refuse a POST whose declared body is far larger than the longest allowed reply.

    Runs before the CSRF check reads a form, so a huge body is never parsed.

    Raises:
        RequestTooLargeError: 413, in one sentence.
    """
    declared = request.headers.get("content-length", "")
    limit = settings.max_agent_reply_chars * BODY_BYTES_PER_CHAR + BODY_SLACK_BYTES
    if declared.isdigit() and int(declared) > limit:
        ticket_id = request.path_params.get("ticket_id")
        logger.warning(
            "refused a %s-byte body on %s ticket=%s", declared, request.url.path, ticket_id
        )
        raise RequestTooLargeError(
            None,
            "That message is far too long; the limit is "
            f"{settings.max_agent_reply_chars} characters.",
        )


BodySizeDep = Annotated[None, Depends(check_body_size)]


async def _fields(request: Request) -> dict[str, Any]:
    """The POST's fields, from a JSON object or a form (the CSRF field removed)."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            data = await request.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise InvalidTicketInputError(None, "Send the fields as a JSON object.")
        return {k: v for k, v in data.items() if k != CSRF_FIELD}
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        return {k: v for k, v in form.items() if k != CSRF_FIELD and isinstance(v, str)}
    return {}


def _text_field(fields: dict[str, Any], name: str) -> str:
    value = fields.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidTicketInputError(None, f"The {name} must be text.")
    return value


def _id_field(fields: dict[str, Any], name: str, message: str) -> int:
    value = fields.get(name)
    if isinstance(value, bool):
        raise InvalidTicketInputError(None, message)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise InvalidTicketInputError(None, message)


def _id_list(fields: dict[str, Any], name: str) -> tuple[int, ...]:
    """Ids from a JSON list or a comma-separated form field (empty: none)."""
    raw = fields.get(name)
    if raw in (None, "", []):
        return ()
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list):
        raise InvalidTicketInputError(None, f"The {name} must be a list of ids.")
    return tuple(
        _id_field({name: item}, name, f"The {name} must be a list of ids.") for item in items
    )


def _wants_redirect(request: Request) -> bool:
    """A plain HTML form post (no JavaScript): answer with a redirect, not JSON."""
    content_type = request.headers.get("content-type", "")
    accept = request.headers.get("accept", "")
    return content_type.startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ) and ("text/html" in accept and "application/json" not in accept)


class ActionResult(BaseModel):
    """What a desk action answers: the ticket after it, and the message it stored."""

    ticket: TicketSummary
    message: MessageView | None = None
    messages: list[MessageView] = Field(default_factory=list)


async def _result(
    request: Request, change: tickets.TicketChange, *, message: Message | None = None
) -> ActionResult:
    ticket_id = change.ticket.id

    def read() -> TicketSummary:
        with _sessions(request)() as session:
            ticket = session.get(Ticket, ticket_id)
            if ticket is None:  # pragma: no cover - tickets are never deleted
                raise TicketNotFoundError(ticket_id)
            return TicketSummary.of(ticket)

    summary = await anyio.to_thread.run_sync(read)
    return ActionResult(
        ticket=summary,
        message=MessageView.of(message) if message is not None else None,
        messages=[MessageView.of(m) for m in change.customer_messages],
    )


def _respond(request: Request, result: ActionResult, *, back_to: str) -> Response:
    if _wants_redirect(request):
        return RedirectResponse(back_to, status_code=status.HTTP_303_SEE_OTHER)
    return JSONResponse(result.model_dump(mode="json"))


def _ticket_page(ticket_id: int) -> str:
    return f"/desk/tickets/{ticket_id}"


# -- pages -------------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse, name="desk_queue")
def queue_page(
    request: Request,
    agent: DeskAgentDep,
    row: CurrentSessionDep,
    session: SessionDep,
    templates: TemplatesDep,
) -> HTMLResponse:
    """The queue of the agent's teams, most urgent first, updated live."""
    items = queue_items(session, agent=agent)
    return templates.TemplateResponse(
        request,
        "desk_queue.html",
        _page_context(
            agent,
            row,
            items=items,
            queued=queued_count(items),
            teams=sorted(agent.teams, key=lambda team: team.name),
            is_admin=agent.role == Role.ADMIN.value,
        ),
    )


@router.get("/tickets/{ticket_id}", response_class=HTMLResponse, name="desk_ticket")
def ticket_page(
    request: Request,
    ticket_id: int,
    agent: DeskAgentDep,
    row: CurrentSessionDep,
    session: SessionDep,
    templates: TemplatesDep,
) -> HTMLResponse:
    """One ticket: the customer, what the bot understood and tried, transcript, actions."""
    try:
        context = ticket_context(session, ticket_id=ticket_id, agent=agent)
    except TicketNotFoundError as exc:
        logger.info("ticket page refused ticket=%s agent=%s", ticket_id, agent.id)
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=exc.message) from exc
    page_data = {
        "ticketId": context.ticket.id,
        "agentId": agent.id,
        "agentName": agent.name,
        "isLead": agent.role in (Role.LEAD.value, Role.ADMIN.value),
        "maxChars": request.app.state.settings.max_agent_reply_chars,
        "maxAttachmentBytes": request.app.state.settings.max_attachment_bytes,
    }
    return templates.TemplateResponse(
        request,
        "desk_ticket.html",
        _page_context(agent, row, ctx=context, page_data=page_data),
    )


# -- read APIs ---------------------------------------------------------------------------------


class QueuePayload(BaseModel):
    """The queue as JSON."""

    queued: int
    items: list[QueueItem]


@router.get("/api/queue", name="desk_queue_json")
def queue_json(agent: DeskAgentDep, session: SessionDep) -> QueuePayload:
    """The agent's open tickets (the queue page re-reads this on every live event)."""
    items = queue_items(session, agent=agent)
    return QueuePayload(queued=queued_count(items), items=items)


@router.get("/api/tickets/{ticket_id}", name="desk_ticket_json")
def ticket_json(ticket_id: int, agent: DeskAgentDep, session: SessionDep) -> TicketContext:
    """The ticket's whole context as JSON."""
    return ticket_context(session, ticket_id=ticket_id, agent=agent)


class SuggestionsPayload(BaseModel):
    """Suggested articles; ``available`` is False when the index can't be used now."""

    available: bool
    articles: list[ArticleSuggestion]


@router.get("/api/tickets/{ticket_id}/suggestions", name="desk_ticket_suggestions")
async def ticket_suggestions(
    request: Request, ticket_id: int, agent: DeskAgentDep, settings: SettingsDep
) -> SuggestionsPayload:
    """Knowledge-base articles matching the customer's latest messages."""

    def customer_texts() -> list[str]:
        with _sessions(request)() as session:
            ticket = tickets.get_ticket_for(session, ticket_id=ticket_id, agent=agent)
            messages = history(session, conversation_id=ticket.conversation_id)
            return [m.text for m in messages if m.role == MessageRole.CUSTOMER.value]

    texts = await anyio.to_thread.run_sync(customer_texts)
    found = await suggest_articles(request.app.state, settings, texts, ticket_id=ticket_id)
    return SuggestionsPayload(available=found is not None, articles=found or [])


def _audit_for(session: Session, ticket_id: int, agent: Agent) -> list[AuditEntry]:
    tickets.get_ticket_for(session, ticket_id=ticket_id, agent=agent)
    return audit_entries(session, ticket_id=ticket_id)


@router.get("/api/tickets/{ticket_id}/audit.json", name="desk_ticket_audit_json")
def audit_json(ticket_id: int, agent: DeskAgentDep, session: SessionDep) -> list[AuditEntry]:
    """The ticket's audit events, oldest first."""
    return _audit_for(session, ticket_id, agent)


def csv_safe(value: Any) -> str:
    """A CSV cell a spreadsheet won't run: text starting ``= + - @`` (or tab/CR) is quoted.

    Args:
        value: The cell's value (``None`` becomes an empty cell).

    Returns:
        The text, prefixed with ``'`` when it could be read as a formula.
    """
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def audit_csv_text(entries: Iterable[AuditEntry]) -> str:
    """The audit entries as CSV text (header row first, every cell formula-safe)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(AUDIT_CSV_COLUMNS)
    for entry in entries:
        note = entry.details.get("note")
        writer.writerow(
            [
                csv_safe(cell)
                for cell in (
                    entry.id,
                    entry.at.astimezone(dt.UTC).isoformat(),
                    entry.actor,
                    entry.actor_name,
                    entry.action,
                    entry.ticket_id,
                    note if isinstance(note, str) else "",
                    json.dumps(entry.details, ensure_ascii=False, sort_keys=True, default=str),
                )
            ]
        )
    return buffer.getvalue()


@router.get("/api/tickets/{ticket_id}/audit.csv", name="desk_ticket_audit_csv")
def audit_csv(ticket_id: int, agent: DeskAgentDep, session: SessionDep) -> Response:
    """The ticket's audit events as a CSV download."""
    entries = _audit_for(session, ticket_id, agent)
    logger.info("audit exported ticket=%s agent=%s rows=%s", ticket_id, agent.id, len(entries))
    return Response(
        audit_csv_text(entries),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="ticket-{ticket_id}-audit.csv"'},
    )


# -- actions -----------------------------------------------------------------------------------


@router.post("/api/tickets/{ticket_id}/claim", name="desk_claim")
async def claim(
    request: Request, ticket_id: int, _size: BodySizeDep, agent: DeskAgentDep, _csrf: CsrfDep
) -> Response:
    """Take a queued ticket; of two agents claiming at once, one wins, the other is told."""
    change = await _desk(request).claim(ticket_id=ticket_id, agent_id=agent.id)
    logger.info("desk claim ticket=%s agent=%s", ticket_id, agent.id)
    return _respond(request, await _result(request, change), back_to=_ticket_page(ticket_id))


@router.post("/api/tickets/{ticket_id}/assign", name="desk_assign")
async def assign(
    request: Request, ticket_id: int, _size: BodySizeDep, agent: DeskAgentDep, _csrf: CsrfDep
) -> Response:
    """A lead assigns the ticket to an agent of its team (``assignee_id``)."""
    fields = await _fields(request)
    assignee_id = _id_field(fields, "assignee_id", "Choose the agent to assign.")
    change = await _desk(request).assign(
        ticket_id=ticket_id, agent_id=agent.id, assignee_id=assignee_id
    )
    logger.info("desk assign ticket=%s lead=%s assignee=%s", ticket_id, agent.id, assignee_id)
    return _respond(request, await _result(request, change), back_to=_ticket_page(ticket_id))


@router.post("/api/tickets/{ticket_id}/reply", name="desk_reply")
async def reply(
    request: Request, ticket_id: int, _size: BodySizeDep, agent: DeskAgentDep, _csrf: CsrfDep
) -> Response:
    """Send the customer a reply (``text``, optional ``attachment_ids``) at once."""
    fields = await _fields(request)
    change = await _desk(request).reply(
        ticket_id=ticket_id,
        agent_id=agent.id,
        text=_text_field(fields, "text"),
        attachment_ids=_id_list(fields, "attachment_ids"),
    )
    sent = change.customer_messages[0] if change.customer_messages else None
    logger.info(
        "desk reply ticket=%s agent=%s message=%s", ticket_id, agent.id, sent.id if sent else None
    )
    result = await _result(request, change, message=sent)
    return _respond(request, result, back_to=_ticket_page(ticket_id))


@router.post("/api/tickets/{ticket_id}/note", name="desk_note")
async def note(
    request: Request, ticket_id: int, _size: BodySizeDep, agent: DeskAgentDep, _csrf: CsrfDep
) -> Response:
    """Add an internal note (``text``) that the customer never sees."""
    fields = await _fields(request)
    change = await _desk(request).note(
        ticket_id=ticket_id, agent_id=agent.id, text=_text_field(fields, "text")
    )
    logger.info("desk note ticket=%s agent=%s", ticket_id, agent.id)
    result = await _result(request, change, message=change.note)
    return _respond(request, result, back_to=_ticket_page(ticket_id))


@router.post("/api/tickets/{ticket_id}/transfer", name="desk_transfer")
async def transfer(
    request: Request, ticket_id: int, _size: BodySizeDep, agent: DeskAgentDep, _csrf: CsrfDep
) -> Response:
    """Move the ticket to another team's queue (``team_id``), with an optional ``note``."""
    fields = await _fields(request)
    team_id = _id_field(fields, "team_id", "Choose the team to transfer to.")
    change = await _desk(request).transfer(
        ticket_id=ticket_id, agent_id=agent.id, team_id=team_id, note=_text_field(fields, "note")
    )
    logger.info("desk transfer ticket=%s agent=%s team=%s", ticket_id, agent.id, team_id)
    return _respond(request, await _result(request, change), back_to="/desk")


@router.post("/api/tickets/{ticket_id}/resolve", name="desk_resolve")
async def resolve(
    request: Request, ticket_id: int, _size: BodySizeDep, agent: DeskAgentDep, _csrf: CsrfDep
) -> Response:
    """Resolve the ticket with a ``note``; the customer is offered a rating."""
    fields = await _fields(request)
    change = await _desk(request).resolve(
        ticket_id=ticket_id, agent_id=agent.id, note=_text_field(fields, "note")
    )
    logger.info("desk resolve ticket=%s agent=%s", ticket_id, agent.id)
    return _respond(request, await _result(request, change), back_to=_ticket_page(ticket_id))


@router.post("/api/tickets/{ticket_id}/hand-back", name="desk_hand_back")
async def hand_back(
    request: Request, ticket_id: int, _size: BodySizeDep, agent: DeskAgentDep, _csrf: CsrfDep
) -> Response:
    """Give the conversation back to the bot, which answers the next question itself."""
    change = await _desk(request).hand_back(ticket_id=ticket_id, agent_id=agent.id)
    logger.info("desk hand back ticket=%s agent=%s", ticket_id, agent.id)
    return _respond(request, await _result(request, change), back_to=_ticket_page(ticket_id))


# -- the live channel --------------------------------------------------------------------------

EventDict = dict[str, Any]


def event_visible(event: EventDict, *, role: str, team_ids: Collection[int]) -> bool:
    """Whether a desk event may reach an agent: their teams' tickets (admins: all).

    Args:
        event: A desk event (``team_id`` names the ticket's team).
        role: The agent's role.
        team_ids: The agent's teams.

    Returns:
        True if the event is for one of the agent's teams (or the agent is an admin).
    """
    if role == Role.ADMIN.value:
        return True
    if role not in DESK_ROLES:
        return False
    team_id = event.get("team_id")
    return isinstance(team_id, int) and not isinstance(team_id, bool) and team_id in team_ids


class DeskEventFilter:
    """Decides, per connection, what an agent's page is sent.

    Events of the agent's teams pass unchanged, and their tickets are remembered. When a
    remembered ticket's event names another team (it was transferred away), the page
    gets ``{"type": "ticket.removed", "ticket_id": id}`` and nothing else, so it can drop
    the row without learning where the ticket went. Everything else is dropped.
    """

    def __init__(
        self, *, role: str, team_ids: Collection[int], known_ticket_ids: Iterable[int] = ()
    ) -> None:
        """Start the filter.

        Args:
            role: The agent's role.
            team_ids: The agent's teams.
            known_ticket_ids: Tickets the page already shows (the queue at connection).
        """
        self.role = role
        self.team_ids = set(team_ids)
        self.known = set(known_ticket_ids)

    def __call__(self, event: EventDict) -> EventDict | None:
        """The event to send for ``event``, or ``None`` to send nothing."""
        ticket_id = event.get("ticket_id")
        if event_visible(event, role=self.role, team_ids=self.team_ids):
            if isinstance(ticket_id, int):
                self.known.add(ticket_id)
            return event
        if isinstance(ticket_id, int) and ticket_id in self.known:
            self.known.discard(ticket_id)
            return {"type": "ticket.removed", "ticket_id": ticket_id}
        return None


def sse_message(event: EventDict) -> ServerSentEvent:
    """An SSE message named by the event's ``type``, with the event as JSON data."""
    return ServerSentEvent(
        data=json.dumps(event, default=str, separators=(",", ":")),
        event=str(event.get("type") or "message"),
    )


SessionCheck = Callable[[], Awaitable[tuple[str, set[int]] | None]]


async def desk_event_stream(
    broker: Broker,
    event_filter: DeskEventFilter,
    *,
    session_check: SessionCheck | None = None,
    recheck_seconds: float = SESSION_RECHECK_SECONDS,
) -> AsyncIterator[ServerSentEvent]:
    """The SSE messages of one desk connection.

    Sends ``ready`` once subscribed, then every event the filter lets through. Every
    ``recheck_seconds`` without an event the session is checked again: when it has
    ended (sign-out, deactivation) the stream sends ``signed_out`` and ends; otherwise
    the agent's current role and teams replace the filter's.

    Args:
        broker: The event broker.
        event_filter: This connection's filter.
        session_check: Returns ``(role, team_ids)`` of a live session, ``None`` if gone.
        recheck_seconds: Seconds between session checks.

    Yields:
        Server-sent events.
    """
    async with broker.subscribe(DESK_TOPIC) as events:
        yield sse_message({"type": "ready"})
        iterator = aiter(events)
        pending: asyncio.Future[EventDict] | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(iterator))
                done, _ = await asyncio.wait({pending}, timeout=recheck_seconds)
                if not done:
                    if session_check is not None:
                        alive = await session_check()
                        if alive is None:
                            yield sse_message({"type": "signed_out"})
                            return
                        event_filter.role, event_filter.team_ids = alive
                    continue
                finished, pending = pending, None
                try:
                    event = finished.result()
                except StopAsyncIteration:
                    return
                outgoing = event_filter(event)
                if outgoing is not None:
                    yield sse_message(outgoing)
        finally:
            if pending is not None:
                # Never awaited here: the stream may be inside a cancelled scope.
                pending.cancel()


def _session_checker(request: Request) -> SessionCheck:
    token = request.cookies.get(SESSION_COOKIE)

    def lookup() -> tuple[str, set[int]] | None:
        with _sessions(request)() as session:
            row = agents_service.session_for_token(session, token)
            if row is None or row.second_factor_pending:
                return None
            return row.agent.role, set(row.agent.team_ids)

    async def check() -> tuple[str, set[int]] | None:
        return await anyio.to_thread.run_sync(lookup)

    return check


@router.get("/events", name="desk_events", dependencies=[Depends(check_origin)])
async def desk_events(request: Request, agent: DeskAgentDep, broker: BrokerDep) -> Response:
    """Server-sent events for the agent's teams (foreign Origins are refused with 403)."""

    def known_tickets() -> list[int]:
        with _sessions(request)() as session:
            return [ticket.id for ticket in tickets.queue(session, agent=agent)]

    known = await anyio.to_thread.run_sync(known_tickets)
    event_filter = DeskEventFilter(role=agent.role, team_ids=agent.team_ids, known_ticket_ids=known)
    logger.info("desk live channel opened agent=%s teams=%s", agent.id, sorted(agent.team_ids))
    stream = desk_event_stream(broker, event_filter, session_check=_session_checker(request))
    return EventSourceResponse(stream, ping=HEARTBEAT_SECONDS)
