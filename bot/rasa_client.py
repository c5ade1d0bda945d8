"""Async client for Rasa's REST channel and HTTP API, with typed errors.

Rasa answers a customer turn with a list of messages; text and custom JSON arrive as
separate items, so a custom item that only carries a citation or handoff notice is
merged into the reply before it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, Field, ValidationError

logger = logging.getLogger(__name__)

_MERGEABLE_CUSTOM_KEYS = frozenset({"citation", "handoff"})
# Durations an action reports about itself (actions/timing.py); never shown or stored.
TIMING_KEY = "concierge_timing"
# Requests in flight to Rasa per client. Rasa works on one turn at a time per worker, so
# more only queue inside Rasa; and httpx's connection pool spends CPU on every waiting
# request (with 200 chats waiting it took most of the bot service's CPU).
DEFAULT_MAX_IN_FLIGHT = 16


class RasaError(Exception):
    """Base class of every Rasa client error.

    Attributes:
        message: A human explanation (never shown to customers).
        sender_id: The conversation concerned, if any.
        status_code: The HTTP status Rasa answered with, if it answered.
    """

    def __init__(
        self, message: str, *, sender_id: str | None = None, status_code: int | None = None
    ) -> None:
        self.message = message
        self.sender_id = sender_id
        self.status_code = status_code
        super().__init__(message)


class RasaUnavailableError(RasaError):
    """Rasa could not be reached, timed out or answered with a server error (5xx)."""


class RasaResponseError(RasaError):
    """Rasa answered, but not with what the API promises (bad JSON, 4xx)."""


class Button(BaseModel):
    """A quick-reply button: ``title`` is shown, ``payload`` is sent to Rasa."""

    title: str
    payload: str


class Citation(BaseModel):
    """The knowledge-base article an answer came from."""

    article_id: str
    title: str
    score: float | None = None


class HandoffNotice(BaseModel):
    """Rasa's announcement that a handoff was opened (by the action server)."""

    id: int
    team: str | None = None


class BotReply(BaseModel):
    """One bot message, as parsed from Rasa's REST channel answer."""

    text: str | None = None
    buttons: list[Button] = Field(default_factory=list)
    citation: Citation | None = None
    handoff: HandoffNotice | None = None
    custom: dict[str, Any] | None = None


def _parse_buttons(raw: Any) -> list[Button]:
    buttons = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        title, payload = item.get("title"), item.get("payload")
        if isinstance(title, str) and title and isinstance(payload, str):
            buttons.append(Button(title=title, payload=payload))
        else:
            logger.warning("ignoring malformed Rasa button %r", item)
    return buttons


def _parse_optional(model: type[BaseModel], raw: Any, what: str) -> Any:
    if raw is None:
        return None
    try:
        return model.model_validate(raw)
    except ValidationError:
        logger.warning("ignoring malformed %s in Rasa custom payload: %r", what, raw)
        return None


def _merge_into(previous: BotReply, custom: dict[str, Any]) -> bool:
    """Merge a citation/handoff-only custom item into ``previous``; False if it cannot."""
    if not custom or not set(custom) <= _MERGEABLE_CUSTOM_KEYS:
        return False
    citation = _parse_optional(Citation, custom.get("citation"), "citation")
    handoff = _parse_optional(HandoffNotice, custom.get("handoff"), "handoff")
    if (citation and previous.citation) or (handoff and previous.handoff):
        return False
    if citation is not None:
        previous.citation = citation
    if handoff is not None:
        previous.handoff = handoff
    return True


def parse_replies(
    data: Any, *, sender_id: str | None = None, timings: list[dict[str, Any]] | None = None
) -> list[BotReply]:
    """Turn the REST channel's JSON answer into bot replies.

    Args:
        data: The decoded JSON (a list of message objects).
        sender_id: For error messages and logs.
        timings: Receives the durations actions reported (``concierge_timing``), which
            are always taken out of the replies.

    Returns:
        The replies in order; custom items that only carry ``citation``/``handoff`` are
        merged into the reply before them.

    Raises:
        RasaResponseError: If ``data`` is not a list of objects.
    """
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise RasaResponseError(
            "Rasa REST channel did not answer a list of message objects", sender_id=sender_id
        )
    replies: list[BotReply] = []
    for item in data:
        custom = item.get("custom")
        custom = custom if isinstance(custom, dict) else None
        if custom is not None and TIMING_KEY in custom:
            custom = dict(custom)
            report = custom.pop(TIMING_KEY)
            if timings is not None and isinstance(report, dict):
                timings.append(report)
            custom = custom or None
        text = item.get("text")
        text = text if isinstance(text, str) else None
        buttons = _parse_buttons(item.get("buttons"))
        mergeable = text is None and not buttons and custom is not None and bool(replies)
        if mergeable and custom is not None and _merge_into(replies[-1], custom):
            continue
        if text is None and not buttons and custom is None:
            image = item.get("image")
            if isinstance(image, str):
                custom = {"image": image}
            else:
                logger.debug("skipping empty Rasa message %r", item)
                continue
        replies.append(
            BotReply(
                text=text,
                buttons=buttons,
                citation=_parse_optional(Citation, (custom or {}).get("citation"), "citation"),
                handoff=_parse_optional(HandoffNotice, (custom or {}).get("handoff"), "handoff"),
                custom=custom,
            )
        )
    return replies


class RasaClient:
    """Talks to one Rasa server over HTTP; share one instance per process."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str | None,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        """Create the client (no connection is made until the first request).

        Args:
            base_url: E.g. ``http://127.0.0.1:5005``.
            token: Rasa's ``--auth-token`` for the HTTP API (tracker, status).
            timeout: Seconds to wait for any request, waiting for a free slot included.
            transport: Optional transport, e.g. ``httpx.MockTransport`` in tests.
            max_in_flight: Most requests sent to Rasa at once; the others wait their turn.
        """
        self._token = token
        self._timeout = timeout
        self._slots = asyncio.Semaphore(max_in_flight)
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(
                max_connections=max_in_flight, max_keepalive_connections=max_in_flight
            ),
        )

    def _auth_params(self) -> dict[str, str]:
        return {"token": self._token} if self._token else {}

    async def _request(
        self,
        method: str,
        path: str,
        *,
        sender_id: str | None = None,
        params: dict[str, str] | None = None,
        json: Any = None,
    ) -> Any:
        try:
            async with asyncio.timeout(self._timeout), self._slots:
                response = await self._client.request(method, path, params=params, json=json)
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise RasaUnavailableError(
                f"Rasa timed out on {method} {path}", sender_id=sender_id
            ) from exc
        except httpx.TransportError as exc:
            raise RasaUnavailableError(
                f"cannot reach Rasa at {self._client.base_url}: {exc}", sender_id=sender_id
            ) from exc
        if response.status_code >= 500:
            raise RasaUnavailableError(
                f"Rasa answered {response.status_code} on {method} {path}",
                sender_id=sender_id,
                status_code=response.status_code,
            )
        if response.status_code >= 400:
            raise RasaResponseError(
                f"Rasa answered {response.status_code} on {method} {path}",
                sender_id=sender_id,
                status_code=response.status_code,
            )
        try:
            return response.json()
        except ValueError as exc:
            raise RasaResponseError(
                f"Rasa answered invalid JSON on {method} {path}",
                sender_id=sender_id,
                status_code=response.status_code,
            ) from exc

    async def send_message(
        self, *, sender_id: str, text: str, timings: list[dict[str, Any]] | None = None
    ) -> list[BotReply]:
        """Send a customer turn to the REST channel and return the bot's replies.

        Args:
            sender_id: The conversation id.
            text: The customer's text or a button payload such as ``/greet``.
            timings: Receives the durations actions reported for this turn.

        Returns:
            The parsed replies (possibly empty).

        Raises:
            RasaUnavailableError: Rasa is down, slow or failing.
            RasaResponseError: Rasa's answer is not a list of messages.
        """
        data = await self._request(
            "POST",
            "/webhooks/rest/webhook",
            sender_id=sender_id,
            json={"sender": sender_id, "message": text},
        )
        return parse_replies(data, sender_id=sender_id, timings=timings)

    async def tracker(self, *, sender_id: str) -> dict[str, Any]:
        """Return the conversation tracker (slots, events) from the HTTP API.

        Args:
            sender_id: The conversation id.

        Returns:
            The tracker JSON.

        Raises:
            RasaUnavailableError: Rasa is down, slow or failing.
            RasaResponseError: The answer is not a JSON object (or auth failed).
        """
        data = await self._request(
            "GET",
            f"/conversations/{quote(sender_id, safe='')}/tracker",
            sender_id=sender_id,
            params=self._auth_params(),
        )
        if not isinstance(data, dict):
            raise RasaResponseError("Rasa tracker is not a JSON object", sender_id=sender_id)
        return data

    async def append_events(self, *, sender_id: str, events: list[dict[str, Any]]) -> None:
        """Append events to a conversation's tracker (HTTP API, token-protected).

        Args:
            sender_id: The conversation id.
            events: Rasa event dicts, e.g. ``{"event": "pause"}``.

        Raises:
            RasaUnavailableError: Rasa is down, slow or failing.
            RasaResponseError: Rasa refused the events (or auth failed).
        """
        await self._request(
            "POST",
            f"/conversations/{quote(sender_id, safe='')}/tracker/events",
            sender_id=sender_id,
            params={**self._auth_params(), "include_events": "NONE"},
            json=events,
        )

    async def pause(self, *, sender_id: str) -> None:
        """Tell Rasa a person took over: its tracker records ``pause``.

        A paused tracker ignores every message until resumed, so nothing is forwarded
        while a person owns the conversation, and :meth:`resume` comes first after.
        """
        await self.append_events(sender_id=sender_id, events=[{"event": "pause"}])

    async def resume(self, *, sender_id: str) -> None:
        """Tell Rasa the bot answers again: ``resume``, and the handoff slots are cleared."""
        await self.append_events(
            sender_id=sender_id,
            events=[
                {"event": "resume"},
                {"event": "slot", "name": "handoff_requested", "value": False},
                {"event": "slot", "name": "handoff_id", "value": None},
            ],
        )

    async def status(self) -> dict[str, Any]:
        """Return Rasa's ``/status`` (loaded model, fingerprint).

        Returns:
            The status JSON.

        Raises:
            RasaUnavailableError: Rasa is down, slow or failing.
            RasaResponseError: The answer is not a JSON object (or auth failed).
        """
        data = await self._request("GET", "/status", params=self._auth_params())
        if not isinstance(data, dict):
            raise RasaResponseError("Rasa status is not a JSON object")
        return data

    async def aclose(self) -> None:
        """Close the underlying connection pool."""
        await self._client.aclose()
