"""The web chat channel: the page, conversation creation and the chat websocket.

Each socket has a reader (customer frames → :class:`ChatService`) and a writer (one
queue of outgoing frames), and listens on the conversation's broker topic, so an
agent's reply, or the desk's "joined"/"resolved" notices, reach an open page at any
time, from any bot-service replica. A closed page misses nothing: the history sent on
``hello`` holds every stored message, in order.

Websocket protocol (JSON text frames):

* client → ``{"type": "hello", "token": "..."}`` first (token optional); a missing or
  unknown token starts a new conversation and the server answers
  ``{"type": "session", "token": "...", "conversation_id": "..."}``;
* server → ``{"type": "history", "messages": [...]}``;
* client → ``{"type": "message", "text": "..."}`` or
  ``{"type": "button", "title": "...", "payload": "/intent"}``;
* server → ``{"type": "typing", "on": true|false}``, ``{"type": "message", ...}`` and
  ``{"type": "error", "message": "..."}`` (the connection stays open); ``message``
  frames also arrive unprompted (agent replies); clients skip ids they already show.
  A message's ``attachments`` list ``{"id", "filename", "content_type", "size_bytes",
  "url"}``, the URL signed here, as the frame is sent, and valid for a few minutes
  (files are uploaded over HTTP: :mod:`bot.web.routes.attachments`).

The conversation (and so the Rasa sender id) is always chosen by the server from the
token; nothing the client sends can address another conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from bot.chat import messages
from bot.chat.service import ChatService
from bot.conversations import service as conversations
from bot.conversations.attachments import AttachmentService
from bot.conversations.models import Channel
from bot.conversations.service import ConversationNotFoundError
from bot.realtime.broker import Broker, conversation_topic
from bot.web.deps import BrokerDep, ChatServiceDep, SessionDep, SettingsDep, TemplatesDep
from bot.web.routes.attachments import AttachmentsDep

logger = logging.getLogger(__name__)

router = APIRouter(tags=["chat"])

# Transport cap, far above max_message_chars: bigger frames are refused without storing.
MAX_FRAME_CHARS = 1_000_000
MAX_TOKEN_CHARS = 200


class HelloFrame(BaseModel):
    """First client frame: presents the stored token, if any."""

    type: Literal["hello"]
    token: str | None = Field(default=None, max_length=MAX_TOKEN_CHARS)


class MessageFrame(BaseModel):
    """A typed customer message."""

    type: Literal["message"]
    text: str


class ButtonFrame(BaseModel):
    """A clicked button: the title is shown, the payload goes to Rasa."""

    type: Literal["button"]
    title: str
    payload: str


ClientFrame = Annotated[HelloFrame | MessageFrame | ButtonFrame, Field(discriminator="type")]
_client_frame: TypeAdapter[HelloFrame | MessageFrame | ButtonFrame] = TypeAdapter(ClientFrame)


class ConversationCreated(BaseModel):
    """Answer of ``POST /api/conversations``; the browser keeps the token."""

    token: str
    conversation_id: str


class InvalidFrameError(ValueError):
    """A client frame that is binary, not JSON, too big or not a known frame type.

    Attributes:
        reason: What is wrong (for the log).
        message: The polite sentence for the customer.
    """

    def __init__(self, reason: str, message: str = messages.INVALID_FRAME) -> None:
        self.reason = reason
        self.message = message
        super().__init__(reason)


@router.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def chat_page(
    request: Request, settings: SettingsDep, templates: TemplatesDep
) -> HTMLResponse:
    """Serve the chat page."""
    return templates.TemplateResponse(
        request,
        "chat.html",
        {
            "max_message_chars": settings.max_message_chars,
            "max_attachment_bytes": settings.max_attachment_bytes,
        },
    )


@router.post("/api/conversations", status_code=status.HTTP_201_CREATED)
def create_conversation(session: SessionDep) -> ConversationCreated:
    """Start a web chat conversation and return its secret token (shown only once)."""
    conversation, token = conversations.start_conversation(session, channel=Channel.WEBCHAT.value)
    return ConversationCreated(token=token, conversation_id=conversation.id)


def parse_frame(message: Mapping[str, Any]) -> HelloFrame | MessageFrame | ButtonFrame:
    """Decode one raw websocket receive event into a client frame.

    Args:
        message: The ASGI ``websocket.receive`` event.

    Returns:
        The validated frame.

    Raises:
        InvalidFrameError: If the frame is binary, too big, not JSON or not a known type.
    """
    text = message.get("text")
    if text is None:
        raise InvalidFrameError("binary frame")
    if len(text) > MAX_FRAME_CHARS:
        raise InvalidFrameError(f"frame of {len(text)} characters", messages.FRAME_TOO_LARGE)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidFrameError("invalid JSON") from exc
    try:
        return _client_frame.validate_python(data)
    except ValidationError as exc:
        raise InvalidFrameError(f"invalid frame: {exc.error_count()} errors") from exc


Frame = dict[str, Any]
OUTBOX_SIZE = 1000


async def _send_error(outbox: asyncio.Queue[Frame], message: str) -> None:
    await outbox.put({"type": "error", "message": message})


async def _receive_and_answer_errors(
    websocket: WebSocket, outbox: asyncio.Queue[Frame]
) -> HelloFrame | MessageFrame | ButtonFrame:
    """Wait for the next valid frame, answering invalid ones with an error frame."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", status.WS_1000_NORMAL_CLOSURE))
        try:
            return parse_frame(message)
        except InvalidFrameError as exc:
            logger.info("invalid websocket frame: %s", exc.reason)
            await _send_error(outbox, exc.message)


async def _history_frame(service: ChatService, conversation_id: str) -> Frame:
    history = await service.history(conversation_id=conversation_id)
    return {"type": "history", "messages": [m.model_dump(mode="json") for m in history]}


async def _handshake(
    websocket: WebSocket, service: ChatService, *, hello_timeout: float
) -> tuple[str, Frame | None]:
    """Wait for ``hello`` and open (or start) the conversation.

    Args:
        websocket: The accepted socket.
        service: The chat service.
        hello_timeout: Seconds to wait for ``hello``.

    Returns:
        The conversation id and, for a new conversation, the ``session`` frame.

    Raises:
        TimeoutError: If no ``hello`` came in time.
    """
    with anyio.fail_after(hello_timeout):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", status.WS_1000_NORMAL_CLOSURE))
            try:
                frame = parse_frame(message)
            except InvalidFrameError as exc:
                logger.info("invalid websocket frame: %s", exc.reason)
                await websocket.send_json({"type": "error", "message": exc.message})
                continue
            if isinstance(frame, HelloFrame):
                break
            await websocket.send_json({"type": "error", "message": messages.HELLO_FIRST})
    conversation, new_token = await service.open_conversation(
        token=frame.token, channel=Channel.WEBCHAT.value
    )
    session_frame = None
    if new_token is not None:
        session_frame = {"type": "session", "token": new_token, "conversation_id": conversation.id}
    logger.info("websocket joined conversation=%s new=%s", conversation.id, new_token is not None)
    return conversation.id, session_frame


async def _answer(
    service: ChatService,
    conversation_id: str,
    frame: MessageFrame | ButtonFrame,
    outbox: asyncio.Queue[Frame],
) -> None:
    """Handle one customer turn, with a typing indicator around it.

    The indicator goes off after the replies, so "typing off" also tells a client that
    the turn is complete.
    """
    await outbox.put({"type": "typing", "on": True})
    try:
        if isinstance(frame, MessageFrame):
            replies = await service.handle_customer_message(
                conversation_id=conversation_id, text=frame.text
            )
        else:
            replies = await service.handle_button(
                conversation_id=conversation_id, title=frame.title, payload=frame.payload
            )
        for reply in replies:
            await outbox.put({"type": "message", **reply.model_dump(mode="json")})
    finally:
        await outbox.put({"type": "typing", "on": False})


async def _reader(
    websocket: WebSocket,
    service: ChatService,
    conversation_id: str,
    outbox: asyncio.Queue[Frame],
) -> None:
    """Read customer frames until the socket closes; each turn is handled in order."""
    while True:
        frame = await _receive_and_answer_errors(websocket, outbox)
        if isinstance(frame, HelloFrame):
            await outbox.put(await _history_frame(service, conversation_id))
            continue
        try:
            await _answer(service, conversation_id, frame, outbox)
        except (ConversationNotFoundError, WebSocketDisconnect):
            raise
        except Exception:
            logger.exception("chat turn failed conversation=%s", conversation_id)
            await _send_error(outbox, messages.UNEXPECTED_ERROR)


async def _writer(
    websocket: WebSocket,
    outbox: asyncio.Queue[Frame],
    attachments: AttachmentService,
    conversation_id: str,
) -> None:
    """Send every queued frame, in order, with attachment links signed as it goes out."""
    while True:
        frame = await outbox.get()
        await websocket.send_json(
            await attachments.present_frame(frame, conversation_id=conversation_id)
        )


async def _pusher(events: Any, outbox: asyncio.Queue[Frame]) -> None:
    """Forward the conversation's broker events (agent replies, desk notices)."""
    async for event in events:
        await outbox.put(event)


async def _serve(
    websocket: WebSocket,
    service: ChatService,
    broker: Broker,
    attachments: AttachmentService,
    conversation_id: str,
) -> None:
    outbox: asyncio.Queue[Frame] = asyncio.Queue(maxsize=OUTBOX_SIZE)
    # Subscribe before reading the history, so nothing falls between the two (a message
    # in both is shown once: clients skip ids they already show).
    async with broker.subscribe(conversation_topic(conversation_id)) as events:
        await outbox.put(await _history_frame(service, conversation_id))
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(_writer, websocket, outbox, attachments, conversation_id)
                tasks.start_soon(_pusher, events, outbox)
                try:
                    await _reader(websocket, service, conversation_id, outbox)
                finally:
                    # Let the writer flush what the reader queued, then stop both tasks.
                    with anyio.move_on_after(1):
                        while not outbox.empty():
                            await anyio.sleep(0.01)
                    tasks.cancel_scope.cancel()
        except BaseExceptionGroup as group:  # the first failure is what ended the socket
            raise _first_exception(group) from None


def _first_exception(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_exception(first) if isinstance(first, BaseExceptionGroup) else first


@router.websocket("/ws/chat")
async def chat_socket(
    websocket: WebSocket,
    service: ChatServiceDep,
    broker: BrokerDep,
    attachments: AttachmentsDep,
    settings: SettingsDep,
) -> None:
    """Serve one browser tab's chat connection."""
    await websocket.accept()
    conversation_id: str | None = None
    hello_timeout = settings.chat_hello_timeout_seconds
    try:
        conversation_id, session_frame = await _handshake(
            websocket, service, hello_timeout=hello_timeout
        )
        if session_frame is not None:
            await websocket.send_json(session_frame)
        await _serve(websocket, service, broker, attachments, conversation_id)
    except WebSocketDisconnect as exc:
        logger.info("websocket closed conversation=%s code=%s", conversation_id, exc.code)
    except TimeoutError:
        logger.info("websocket sent no hello within %.1f s; closing it", hello_timeout)
        with contextlib.suppress(Exception):  # the client may have gone meanwhile
            await websocket.close(code=status.WS_1008_POLICY_VIOLATION)
    except ConversationNotFoundError as exc:
        logger.warning("websocket conversation=%s vanished", exc.conversation_id)
        with contextlib.suppress(Exception):
            await websocket.send_json({"type": "error", "message": messages.UNEXPECTED_ERROR})
            await websocket.close(code=status.WS_1011_INTERNAL_ERROR)
    except Exception:
        logger.exception("websocket failed conversation=%s", conversation_id)
        with contextlib.suppress(Exception):  # the socket may already be gone
            await websocket.close(code=status.WS_1011_INTERNAL_ERROR)
