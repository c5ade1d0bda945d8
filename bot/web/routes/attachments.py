"""Attachments both ways: customer and agent uploads, signed and desk downloads.

An upload's request body is the file itself (not a multipart form), so it is streamed
to disk and refused the moment it goes over the size limit or its first bytes are not
a JPEG, PNG, WebP or PDF (see :mod:`bot.conversations.attachments`). Headers:
``Content-Type`` is the file's type (``file.type``; may be empty), ``X-Filename`` its
name, percent-encoded (``encodeURIComponent(file.name)``). From a page::

    fetch(url, {method: "POST", body: file, headers: {
        "Content-Type": file.type, "X-Filename": encodeURIComponent(file.name), ...}})

Refusals answer ``{"detail": "<one sentence to show>"}``: 400 empty file, 401 unknown
chat token, 403 bad CSRF token or link, 404 not yours, 413 too big (nothing stored),
415 not JPEG/PNG/WebP/PDF or not the declared type.

Routes:

* ``POST /api/conversations/attachments`` — a customer sends a file, with
  ``Authorization: Bearer <chat token>`` (the token the page keeps). The file becomes a
  customer message ``📎 <name>`` with ``payload = {"attachments": [id]}``; an open
  ticket's desk is told (``ticket.message`` on the ``desk`` topic, see below); with no
  ticket a short note says the bot can't read files but a person can. Answers 201 with
  the stored message as the chat shows it (the page skips ids it already shows; the
  message and the note are also pushed to the conversation's open pages)::

      {"id": 41, "role": "customer", "text": "📎 parcel.jpg", "buttons": [],
       "citation": null, "handoff": null, "agent_name": null, "status": "delivered",
       "created_at": "2026-11-24T08:00:00Z",
       "attachments": [{"id": 7, "filename": "parcel.jpg", "content_type": "image/jpeg",
                        "size_bytes": 48213, "url": "/attachments/7?exp=…&sig=…"}]}

* ``GET /api/conversations/attachments/{id}`` — the same ``Authorization``; answers the
  attachment's ``{"id", "filename", "content_type", "size_bytes", "url"}`` with a fresh
  signed URL (links last 15 minutes); 404 for another conversation's file.
* ``POST /desk/api/tickets/{ticket_id}/attachments`` — an agent uploads a file for a
  reply (session cookie and ``X-CSRF-Token``; a ticket the agent may not work is 404).
  Answers 201::

      {"id": 8, "filename": "returns-label.pdf", "content_type": "application/pdf",
       "size_bytes": 18234, "url": "/desk/attachments/8"}

  The file is not sent yet: pass its id with the reply, ``Desk.reply(...,
  attachment_ids=(8,))``; the customer's page then shows it under the agent's message.
* ``GET /attachments/{id}?exp=…&sig=…`` — a signed download (the URLs in chat
  messages); expired or wrong signature: 403.
* ``GET /desk/attachments/{id}`` — for signed-in agents who may work a ticket of the
  file's conversation (others: 404).

Downloads carry the stored (sniffed) type, ``X-Content-Type-Options: nosniff``, a
sandboxing ``Content-Security-Policy``, ``Cache-Control: private, no-store``, and
``Content-Disposition: inline`` for images, ``attachment`` for PDFs.

Desk event for a customer's file: the ``ticket.message`` event's ``message`` gains
``"attachments": [{"id", "filename", "content_type", "size_bytes", "url":
"/desk/attachments/<id>"}]``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated, cast
from urllib.parse import unquote

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from bot.agents.models import Agent
from bot.chat.service import OutboundMessage
from bot.conversations import attachments as files
from bot.conversations.attachments import (
    AttachmentError,
    AttachmentInfo,
    AttachmentService,
    AttachmentTooLargeError,
    UnsupportedAttachmentTypeError,
)
from bot.conversations.models import Attachment
from bot.conversations.service import conversation_for_token
from bot.handoff import service as tickets
from bot.handoff.events import message_event
from bot.realtime.broker import DESK_TOPIC, conversation_topic
from bot.web.auth import CsrfDep, CurrentAgentDep
from bot.web.deps import BrokerDep

logger = logging.getLogger(__name__)

router = APIRouter(tags=["attachments"])

FILENAME_HEADER = "x-filename"
MAX_FILENAME_HEADER_CHARS = 1000
MAX_TOKEN_CHARS = 200
MAX_SIGNATURE_CHARS = 100
DOWNLOAD_CSP = (
    "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
    "sandbox; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)

CHAT_EXPIRED = "Sorry — this chat has expired. Please reload the page."
LINK_EXPIRED = "This link has expired. Please open the file again from the chat."
NOT_FOUND = "This file doesn't exist or isn't part of this conversation."
FILE_GONE = "Sorry — this file is no longer available."


def get_attachments(connection: HTTPConnection) -> AttachmentService:
    """Return the process-wide attachment service."""
    return cast(AttachmentService, connection.app.state.attachments)


AttachmentsDep = Annotated[AttachmentService, Depends(get_attachments)]


# -- helpers --------------------------------------------------------------------------------


def _bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
        return None
    return token


async def _customer_conversation(request: Request, attachments: AttachmentService) -> str:
    """The conversation the request's chat token opens.

    Raises:
        HTTPException: 401 for a missing, malformed or unknown token.
    """
    token = _bearer_token(request)
    conversation = (
        await attachments.db(conversation_for_token, token=token) if token is not None else None
    )
    if conversation is None:
        logger.info("attachment request with no valid chat token on %s", request.url.path)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=CHAT_EXPIRED,
            headers={"WWW-Authenticate": "Bearer"},
        )
    return conversation.id


def _declared_filename(request: Request) -> str:
    raw = request.headers.get(FILENAME_HEADER, "")[:MAX_FILENAME_HEADER_CHARS]
    return unquote(raw, errors="replace")


async def _drain(body: AsyncIterator[bytes], limit: int) -> None:
    """Read (and drop) the rest of a refused body, up to ``limit`` bytes.

    A browser that is still sending when the server answers may report a network error
    instead of the answer; reading a bounded rest lets it see the polite refusal.
    """
    seen = 0
    async for chunk in body:
        seen += len(chunk)
        if seen > limit:
            return


async def _receive(request: Request, attachments: AttachmentService, who: str) -> files.StoredFile:
    """Stream the request body into the store.

    Raises:
        HTTPException: 400, 413 or 415 with one sentence; nothing is stored.
    """
    declared = request.headers.get("content-type")
    body = request.stream()
    try:
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > attachments.max_bytes:
            raise AttachmentTooLargeError(attachments.max_bytes)
        if (declared or "").lower().startswith("multipart/"):
            raise UnsupportedAttachmentTypeError("a multipart form; the body must be the file")
        return await attachments.store(body, declared_type=declared)
    except AttachmentError as exc:
        logger.info("attachment refused %s: %s", who, exc.reason)
        if isinstance(exc, UnsupportedAttachmentTypeError):
            await _drain(body, attachments.max_bytes)
        raise HTTPException(exc.status_code, detail=exc.message) from None


def _file_response(attachments: AttachmentService, attachment: Attachment) -> FileResponse:
    path = attachments.path_of(attachment)
    if not path.is_file():
        logger.error(
            "attachment bytes missing attachment=%s conversation=%s",
            attachment.id,
            attachment.conversation_id,
        )
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=FILE_GONE)
    inline = attachment.content_type.startswith("image/")
    return FileResponse(
        path,
        media_type=attachment.content_type,
        filename=attachment.filename,
        content_disposition_type="inline" if inline else "attachment",
        headers={
            "Content-Security-Policy": DOWNLOAD_CSP,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )


def _desk_info(attachment: Attachment) -> AttachmentInfo:
    return files.describe(attachment, url=files.desk_url(attachment.id))


# -- customer -------------------------------------------------------------------------------


@router.post("/api/conversations/attachments", status_code=status.HTTP_201_CREATED)
async def upload_from_customer(
    request: Request, attachments: AttachmentsDep, broker: BrokerDep
) -> OutboundMessage:
    """Store a customer's file as a message of their conversation."""
    conversation_id = await _customer_conversation(request, attachments)
    who = f"conversation={conversation_id}"
    try:
        # Early and cheap, before any byte is read; checked again under the row lock.
        await attachments.db(
            files.check_customer_quota,
            conversation_id=conversation_id,
            limit=attachments.max_customer_files,
        )
    except files.TooManyAttachmentsError as exc:
        logger.info("attachment refused %s: %s", who, exc.reason)
        raise HTTPException(exc.status_code, detail=exc.message) from None
    stored = await _receive(request, attachments, who)
    filename = files.sanitise_filename(
        _declared_filename(request), content_type=stored.content_type
    )
    try:
        upload = await attachments.db(
            files.record_customer_upload,
            conversation_id=conversation_id,
            stored=stored,
            filename=filename,
            max_files=attachments.max_customer_files,
        )
    except files.TooManyAttachmentsError as exc:
        # Lost a race with another upload; the bytes stay in the content-addressed store
        # unreferenced (the same as an upload whose message failed) and nothing is shown.
        logger.info("attachment refused %s: %s", who, exc.reason)
        raise HTTPException(exc.status_code, detail=exc.message) from None
    message = OutboundMessage.from_message(upload.message)
    if upload.ticket is not None:
        event = message_event(upload.ticket, upload.message)
        event["message"]["attachments"] = [_desk_info(upload.attachment).model_dump(mode="json")]
        await broker.publish(DESK_TOPIC, event)
    # The conversation's other open pages (ids only; each socket signs its own links).
    topic = conversation_topic(conversation_id)
    await broker.publish(topic, {"type": "message", **message.model_dump(mode="json")})
    if upload.notice is not None:
        notice = OutboundMessage.from_message(upload.notice)
        await broker.publish(topic, {"type": "message", **notice.model_dump(mode="json")})
    logger.info(
        "customer attachment conversation=%s message=%s attachment=%s ticket=%s",
        conversation_id,
        upload.message.id,
        upload.attachment.id,
        upload.ticket.id if upload.ticket else None,
    )
    return message.model_copy(
        update={"attachments": [attachments.customer_info(upload.attachment)]}
    )


@router.get("/api/conversations/attachments/{attachment_id}")
async def customer_attachment_link(
    attachment_id: int, request: Request, attachments: AttachmentsDep
) -> AttachmentInfo:
    """A fresh signed link to one of the conversation's files (links expire quickly)."""
    conversation_id = await _customer_conversation(request, attachments)
    rows = await attachments.db(
        files.conversation_attachments, conversation_id=conversation_id, ids=[attachment_id]
    )
    if attachment_id not in rows:
        logger.info(
            "attachment=%s is not in conversation=%s; link refused", attachment_id, conversation_id
        )
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=NOT_FOUND)
    return attachments.customer_info(rows[attachment_id])


@router.get("/attachments/{attachment_id}", response_class=FileResponse)
async def download(
    attachment_id: int,
    attachments: AttachmentsDep,
    exp: str | None = None,
    sig: str | None = None,
) -> FileResponse:
    """Serve a file through a signed, short-lived link."""
    if (
        exp is None
        or sig is None
        or not exp.isdigit()
        or len(exp) > 12
        or len(sig) > MAX_SIGNATURE_CHARS
        or not attachments.signer.verify(attachment_id, int(exp), sig)
    ):
        logger.info("attachment=%s link refused: expired or bad signature", attachment_id)
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=LINK_EXPIRED)
    attachment = await attachments.db(_get, attachment_id=attachment_id)
    if attachment is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=NOT_FOUND)
    return _file_response(attachments, attachment)


def _get(session: Session, *, attachment_id: int) -> Attachment | None:
    return session.get(Attachment, attachment_id)


# -- desk -----------------------------------------------------------------------------------


def _agent_ticket_conversation(session: Session, *, ticket_id: int, agent: Agent) -> str:
    return tickets.get_ticket_for(session, ticket_id=ticket_id, agent=agent).conversation_id


def _add_agent_attachment(
    session: Session, *, conversation_id: str, stored: files.StoredFile, filename: str, agent: Agent
) -> Attachment:
    return files.add_attachment(
        session,
        conversation_id=conversation_id,
        stored=stored,
        filename=filename,
        uploaded_by=tickets.actor_for(agent),
    )


@router.post("/desk/api/tickets/{ticket_id}/attachments", status_code=status.HTTP_201_CREATED)
async def upload_from_agent(
    ticket_id: int,
    request: Request,
    agent: CurrentAgentDep,
    _csrf: CsrfDep,
    attachments: AttachmentsDep,
) -> AttachmentInfo:
    """Store an agent's file for a reply on a ticket they may work (else 404)."""
    conversation_id = await attachments.db(
        _agent_ticket_conversation, ticket_id=ticket_id, agent=agent
    )
    stored = await _receive(request, attachments, f"ticket={ticket_id} agent={agent.id}")
    filename = files.sanitise_filename(
        _declared_filename(request), content_type=stored.content_type
    )
    attachment = await attachments.db(
        _add_agent_attachment,
        conversation_id=conversation_id,
        stored=stored,
        filename=filename,
        agent=agent,
    )
    logger.info(
        "agent attachment ticket=%s agent=%s attachment=%s", ticket_id, agent.id, attachment.id
    )
    return _desk_info(attachment)


def _visible_to_agent(session: Session, *, attachment_id: int, agent: Agent) -> Attachment | None:
    attachment = session.get(Attachment, attachment_id)
    if attachment is None or not files.agent_may_see(session, attachment=attachment, agent=agent):
        return None
    return attachment


@router.get("/desk/attachments/{attachment_id}", response_class=FileResponse)
async def desk_download(
    attachment_id: int, agent: CurrentAgentDep, attachments: AttachmentsDep
) -> FileResponse:
    """Serve a file to an agent who may work a ticket of its conversation."""
    attachment = await attachments.db(_visible_to_agent, attachment_id=attachment_id, agent=agent)
    if attachment is None:
        logger.info("attachment=%s refused to agent=%s", attachment_id, agent.id)
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=NOT_FOUND)
    return _file_response(attachments, attachment)
