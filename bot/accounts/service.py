"""Identify customers by e-mail, account number or order number, and link them to conversations."""

from __future__ import annotations

import logging

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import bot.db.models  # noqa: F401  (every table must be mapped before the first query)
from bot.accounts.models import Account, Contact, Order
from bot.audit.service import record_event
from bot.conversations.models import Conversation
from bot.conversations.service import ensure_conversation

logger = logging.getLogger(__name__)

ACTOR_ACTION_SERVER = "action_server"


class ContactNotFoundError(LookupError):
    """No contact has this id.

    Attributes:
        contact_id: The id that was looked up.
        message: A human explanation.
    """

    def __init__(self, contact_id: int) -> None:
        self.contact_id = contact_id
        self.message = f"contact {contact_id} does not exist"
        super().__init__(self.message)


class CustomerProfile(BaseModel):
    """Who the customer is: the contact, their account and the account's team."""

    contact_id: int
    contact_name: str
    email: str
    account_id: int
    account_number: str
    account_name: str
    segment: str
    tier: str
    team_slug: str | None = None
    team_name: str | None = None

    @classmethod
    def from_contact(cls, contact: Contact) -> CustomerProfile:
        """Build the profile of a contact (its account and team are loaded eagerly).

        Args:
            contact: A persistent contact.

        Returns:
            The profile.
        """
        account = contact.account
        team = account.team
        return cls(
            contact_id=contact.id,
            contact_name=contact.name,
            email=contact.email,
            account_id=account.id,
            account_number=account.number,
            account_name=account.name,
            segment=account.segment,
            tier=account.tier,
            team_slug=team.slug if team else None,
            team_name=team.name if team else None,
        )


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _primary_contact(session: Session, account_id: int) -> Contact | None:
    return session.scalars(
        select(Contact).where(Contact.account_id == account_id).order_by(Contact.id).limit(1)
    ).first()


def _account_id_for_number(session: Session, account_number: str) -> int | None:
    return session.scalars(
        select(Account.id).where(func.upper(Account.number) == account_number.upper())
    ).first()


def _account_id_for_order(session: Session, order_number: str) -> int | None:
    return session.scalars(
        select(Order.account_id).where(func.upper(Order.number) == order_number.upper())
    ).first()


def find_customer(
    session: Session,
    *,
    email: str | None = None,
    account_number: str | None = None,
    order_number: str | None = None,
) -> CustomerProfile | None:
    """Find a customer by e-mail, account number or order number (case-insensitive).

    An e-mail finds its contact; an account or order number finds the account's primary
    (first) contact. When several identifiers are given they must all point to the same
    account (so an order number can confirm an e-mail address); otherwise ``None``.

    Args:
        session: The open session.
        email: A contact's e-mail address.
        account_number: An account number such as ``ACC-10042``.
        order_number: An order number such as ``ORD-100234``.

    Returns:
        The customer's profile, or ``None`` if nothing (consistent) matches.
    """
    email, account_number, order_number = (
        _clean(email),
        _clean(account_number),
        _clean(order_number),
    )
    if email is None and account_number is None and order_number is None:
        return None

    contact: Contact | None = None
    account_ids: set[int | None] = set()
    if email is not None:
        contact = session.scalars(
            select(Contact).where(func.lower(Contact.email) == email.lower())
        ).first()
        if contact is None:
            return None
        account_ids.add(contact.account_id)
    if account_number is not None:
        account_ids.add(_account_id_for_number(session, account_number))
    if order_number is not None:
        account_ids.add(_account_id_for_order(session, order_number))

    if None in account_ids or len(account_ids) != 1:
        return None
    if contact is None:
        (account_id,) = account_ids
        assert account_id is not None
        contact = _primary_contact(session, account_id)
        if contact is None:
            return None
    return CustomerProfile.from_contact(contact)


def link_conversation(session: Session, *, conversation_id: str, contact_id: int) -> None:
    """Record that a conversation is with this contact, and audit it.

    Creates the conversation row (channel ``"unknown"``) if no channel stored it yet.

    Args:
        session: The open session (committed here).
        conversation_id: The conversation (Rasa sender id).
        contact_id: The identified contact.

    Raises:
        ContactNotFoundError: If the contact does not exist.
    """
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise ContactNotFoundError(contact_id)
    conversation = ensure_conversation(session, conversation_id=conversation_id)
    previous = conversation.contact_id
    conversation.contact_id = contact.id
    record_event(
        session,
        actor=ACTOR_ACTION_SERVER,
        action="customer.identified",
        conversation_id=conversation_id,
        account_id=contact.account_id,
        details={"contact_id": contact.id, "previous_contact_id": previous},
    )
    session.commit()
    logger.info(
        "customer identified conversation=%s contact=%s account=%s",
        conversation_id,
        contact.id,
        contact.account_id,
    )


def customer_for_conversation(session: Session, *, conversation_id: str) -> CustomerProfile | None:
    """Return the profile of the customer linked to a conversation.

    Args:
        session: The open session.
        conversation_id: The conversation (Rasa sender id).

    Returns:
        The profile, or ``None`` if the conversation is unknown or not linked yet.
    """
    conversation = session.get(Conversation, conversation_id)
    if conversation is None or conversation.contact_id is None:
        return None
    contact = session.get(Contact, conversation.contact_id)
    return CustomerProfile.from_contact(contact) if contact is not None else None
