"""Typed client of the bot service's internal API: the only way actions reach app state.

The bot service owns conversations, tickets, accounts and the audit log; actions never
open its database. Each method is one ``POST /internal/v1/...`` with the service token,
and raises :class:`BotServiceError` (never returns an error dict) so an action can
answer the customer with one polite ``utter_*`` and log the conversation id.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError

__all__ = [
    "BotServiceClient",
    "BotServiceError",
    "HandoffOpened",
    "IdentityNoted",
    "Withdrawn",
]

logger = logging.getLogger(__name__)


class BotServiceError(Exception):
    """The bot service could not be reached or refused the request.

    Attributes:
        message: What went wrong (for the log, never for the customer).
        status_code: The HTTP status, when the service answered.
    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        self.message = message
        self.status_code = status_code
        super().__init__(message)


class HandoffOpened(BaseModel):
    """The ticket a handoff request opened (or the one already open)."""

    ticket_id: int
    team_name: str | None
    already_open: bool
    available: bool
    wait_message: str


class Withdrawn(BaseModel):
    """Whether a queued ticket was withdrawn."""

    withdrawn: bool
    ticket_id: int | None = None


class IdentityNoted(BaseModel):
    """Whether a typed identifier matched a customer (nothing else is revealed)."""

    matched: bool


class BotServiceClient:
    """Calls the bot service's internal API; share one per process."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str | None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Create the client (nothing is connected until the first call).

        Args:
            base_url: E.g. ``http://127.0.0.1:8000/internal/v1``.
            token: The service token (``CONCIERGE_SERVICE_TOKEN``).
            timeout: Seconds per request.
            transport: An ``httpx`` transport (tests use ``ASGITransport`` or a mock).
        """
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        try:
            response = await self._client.post(path, json=body)
        except httpx.HTTPError as exc:
            raise BotServiceError(f"cannot reach the bot service for {path}: {exc}") from exc
        if response.status_code >= 400:
            raise BotServiceError(
                f"bot service answered {response.status_code} for {path}",
                status_code=response.status_code,
            )
        if response.status_code == 204:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise BotServiceError(f"bot service answered invalid JSON for {path}") from exc

    @staticmethod
    def _parse(model: type[Any], data: Any, path: str) -> Any:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise BotServiceError(f"unexpected answer from the bot service for {path}") from exc

    async def open_handoff(
        self,
        *,
        conversation_id: str,
        reason_code: str,
        reason: str,
        context: dict[str, Any],
        channel: str | None,
    ) -> HandoffOpened:
        """Open (or refresh) the conversation's ticket.

        Raises:
            BotServiceError: The service is down or refused.
        """
        body = {
            "conversation_id": conversation_id,
            "reason_code": reason_code,
            "reason": reason,
            "context": context,
            "channel": channel,
        }
        data = await self._post("/handoffs", body)
        parsed: HandoffOpened = self._parse(HandoffOpened, data, "/handoffs")
        return parsed

    async def withdraw_handoff(self, *, conversation_id: str) -> Withdrawn:
        """Withdraw the conversation's queued ticket, if any.

        Raises:
            BotServiceError: The service is down or refused.
        """
        data = await self._post("/handoffs/withdraw", {"conversation_id": conversation_id})
        parsed: Withdrawn = self._parse(Withdrawn, data, "/handoffs/withdraw")
        return parsed

    async def note_identity_claim(
        self,
        *,
        conversation_id: str,
        email: str | None,
        account_number: str | None,
        order_number: str | None,
    ) -> IdentityNoted:
        """Link the conversation to the contact these identifiers point to (unverified).

        Raises:
            BotServiceError: The service is down or refused.
        """
        body = {
            "conversation_id": conversation_id,
            "email": email,
            "account_number": account_number,
            "order_number": order_number,
        }
        data = await self._post("/identity-claims", body)
        parsed: IdentityNoted = self._parse(IdentityNoted, data, "/identity-claims")
        return parsed

    async def record_feedback(
        self,
        *,
        conversation_id: str,
        article_id: str | None,
        outcome: str | None,
        helpful: bool,
    ) -> None:
        """Store whether a knowledge-base answer helped.

        Raises:
            BotServiceError: The service is down or refused.
        """
        await self._post(
            "/feedback",
            {
                "conversation_id": conversation_id,
                "article_id": article_id,
                "outcome": outcome,
                "helpful": helpful,
            },
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()
