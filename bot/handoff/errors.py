"""Ticket errors: each carries the ticket id and one human sentence for the desk."""

from __future__ import annotations


class TicketError(Exception):
    """Base class of ticket errors.

    Attributes:
        ticket_id: The ticket concerned (may be a forged id; only ever logged).
        message: One sentence an agent can be shown.
    """

    status_code = 400

    def __init__(self, ticket_id: int | None, message: str) -> None:
        self.ticket_id = ticket_id
        self.message = message
        super().__init__(message)


class TicketNotFoundError(TicketError):
    """No such ticket, or not one this agent may see (the two are not told apart)."""

    status_code = 404

    def __init__(self, ticket_id: int | None) -> None:
        super().__init__(ticket_id, "This ticket doesn't exist or isn't in your queues.")


class TicketConflictError(TicketError):
    """The ticket changed under the agent: someone else claimed it, or it is closed."""

    status_code = 409


class TicketClosedError(TicketConflictError):
    """The ticket is resolved, handed back or withdrawn; it takes no more replies."""

    def __init__(self, ticket_id: int | None) -> None:
        super().__init__(
            ticket_id,
            "This ticket is closed. If the customer writes again and asks for a person, "
            "a new ticket opens.",
        )


class TicketPermissionError(TicketError):
    """The agent's role does not allow this action on the ticket."""

    status_code = 403

    def __init__(self, ticket_id: int | None, message: str = "You can't do that.") -> None:
        super().__init__(ticket_id, message)


class InvalidTicketInputError(TicketError):
    """What the agent sent cannot be used (empty reply, too long, unknown team)."""

    status_code = 422
