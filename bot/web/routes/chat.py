"""The web chat: the page, conversation creation and the chat websocket.

Websocket protocol (JSON text frames):

* client → ``{"type": "hello", "token": "..."}`` first (token optional); a missing or
  unknown token starts a new conversation and the server answers
  ``{"type": "session", "token": "...", "conversation_id": "..."}``;
* server → ``{"type": "history", "messages": [...]}``;
* client → ``{"type": "message", "text": "..."}`` or
  ``{"type": "button", "title": "...", "payload": "/intent"}``;
* server → ``{"type": "typing", "on": true|false}``, ``{"type": "message", ...}`` and
  ``{"type": "error", "message": "..."}`` (the connection stays open).

The conversation (and so the Rasa sender id) is always chosen by the server from the
token; nothing the client sends can address another conversation.
"""

from __future__ import annotations

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
from bot.chat.service import ChatService, OutboundMessage
from bot.conversations import service as conversations
from bot.conversations.models import Channel
from bot.conversations.service import ConversationNotFoundError
from bot.web.deps import ChatServiceDep, SessionDep, SettingsDep, TemplatesDep

logger = logging.getLogger(__name__)

router = APIRouter(tags=["chat"])

HELLO_TIMEOUT_SECONDS = 30.0
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
        request, "chat.html", {"max_message_chars": settings.max_message_chars}
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


async def _receive_frame(websocket: WebSocket) -> HelloFrame | MessageFrame | ButtonFrame:
    """Wait for the next valid frame, answering invalid ones with an error frame."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", status.WS_1000_NORMAL_CLOSURE))
        try:
            return parse_frame(message)
        except InvalidFrameError as exc:
            logger.info("invalid websocket frame: %s", exc.reason)
            await _send_error(websocket, exc.message)


async def _send_error(websocket: WebSocket, message: str) -> None:
    await websocket.send_json({"type": "error", "message": message})


async def _send_message(websocket: WebSocket, message: OutboundMessage) -> None:
    await websocket.send_json({"type": "message", **message.model_dump(mode="json")})


async def _send_history(websocket: WebSocket, service: ChatService, conversation_id: str) -> None:
    history = await service.history(conversation_id=conversation_id)
    await websocket.send_json(
        {"type": "history", "messages": [m.model_dump(mode="json") for m in history]}
    )


async def _handshake(websocket: WebSocket, service: ChatService) -> str:
    """Wait for ``hello``, open (or start) the conversation and send the history."""
    with anyio.fail_after(HELLO_TIMEOUT_SECONDS):
        while True:
            frame = await _receive_frame(websocket)
            if isinstance(frame, HelloFrame):
                break
            await _send_error(websocket, messages.HELLO_FIRST)
    conversation, new_token = await service.open_conversation(
        token=frame.token, channel=Channel.WEBCHAT.value
    )
    if new_token is not None:
        await websocket.send_json(
            {"type": "session", "token": new_token, "conversation_id": conversation.id}
        )
    await _send_history(websocket, service, conversation.id)
    logger.info("websocket joined conversation=%s new=%s", conversation.id, new_token is not None)
    return conversation.id


async def _answer(
    websocket: WebSocket,
    service: ChatService,
    conversation_id: str,
    frame: MessageFrame | ButtonFrame,
) -> None:
    """Handle one customer turn, with a typing indicator around it.

    The indicator goes off after the replies, so "typing off" also tells a client that
    the turn is complete.
    """
    await websocket.send_json({"type": "typing", "on": True})
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
            await _send_message(websocket, reply)
    finally:
        await websocket.send_json({"type": "typing", "on": False})


@router.websocket("/ws/chat")
async def chat_socket(websocket: WebSocket, service: ChatServiceDep) -> None:
    """Serve one browser tab's chat connection."""
    await websocket.accept()
    conversation_id: str | None = None
    try:
        conversation_id = await _handshake(websocket, service)
        while True:
            frame = await _receive_frame(websocket)
            if isinstance(frame, HelloFrame):
                await _send_history(websocket, service, conversation_id)
                continue
            try:
                await _answer(websocket, service, conversation_id, frame)
            except (ConversationNotFoundError, WebSocketDisconnect):
                raise
            except Exception:
                logger.exception("chat turn failed conversation=%s", conversation_id)
                await _send_error(websocket, messages.UNEXPECTED_ERROR)
    except WebSocketDisconnect as exc:
        logger.info("websocket closed conversation=%s code=%s", conversation_id, exc.code)
    except TimeoutError:
        logger.info("websocket sent no hello within %.0f s", HELLO_TIMEOUT_SECONDS)
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION)
    except ConversationNotFoundError as exc:
        logger.warning("websocket conversation=%s vanished", exc.conversation_id)
        await _send_error(websocket, messages.UNEXPECTED_ERROR)
        await websocket.close(code=status.WS_1011_INTERNAL_ERROR)
    except Exception:
        logger.exception("websocket failed conversation=%s", conversation_id)
        with contextlib.suppress(Exception):  # the socket may already be gone
            await websocket.close(code=status.WS_1011_INTERNAL_ERROR)
