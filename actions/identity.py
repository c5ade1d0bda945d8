"""Identify the customer from an e-mail address, account number or order number.

``action_identify_customer`` takes the entities Rasa extracted (``email``,
``account_number``, ``order_number``) and fills any gap by parsing the message with
spaCy (:func:`actions.parsing.extract_identifiers`). ``find_customer`` must find one
consistent customer; the conversation is then linked to the contact and the identity
slots are set. Business (B2B) contacts are told that their dedicated team will pick
up. The reply never says *which* detail did not match.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import deps
from actions.parsing import (
    Identifiers,
    extract_identifiers,
    normalize_account_number,
    normalize_email,
    normalize_order_number,
)

if TYPE_CHECKING:
    from bot.accounts.service import CustomerProfile

__all__ = ["ActionIdentifyCustomer", "identifiers_from_tracker"]

logger = logging.getLogger(__name__)

DEFAULT_TEAM_NAME = "Customer Care"


def identifiers_from_tracker(tracker: Tracker) -> Identifiers:
    """Return the identifiers in the latest message: Rasa's entities first, then spaCy's.

    Args:
        tracker: The conversation.

    Returns:
        The normalised identifiers (a field is ``None`` if neither source found it).
    """

    def entity(name: str) -> str | None:
        value = next(tracker.get_latest_entity_values(name), None)
        return str(value) if value is not None else None

    from_rasa = Identifiers(
        email=normalize_email(entity("email")),
        account_number=normalize_account_number(entity("account_number")),
        order_number=normalize_order_number(entity("order_number")),
    )
    if from_rasa.email and from_rasa.account_number and from_rasa.order_number:
        return from_rasa
    parsed = extract_identifiers(tracker.latest_message.get("text"))
    return Identifiers(
        email=from_rasa.email or parsed.email,
        account_number=from_rasa.account_number or parsed.account_number,
        order_number=from_rasa.order_number or parsed.order_number,
    )


def _identify(
    session_factory: deps.SessionFactory, conversation_id: str, identifiers: Identifiers
) -> CustomerProfile | None:
    from bot.accounts.service import find_customer, link_conversation

    with session_factory() as session:
        profile = find_customer(
            session,
            email=identifiers.email,
            account_number=identifiers.account_number,
            order_number=identifiers.order_number,
        )
        if profile is not None:
            link_conversation(
                session, conversation_id=conversation_id, contact_id=profile.contact_id
            )
        return profile


class ActionIdentifyCustomer(Action):
    """Look the customer up and remember who they are for the rest of the conversation."""

    def name(self) -> str:
        """Return the action's name."""
        return "action_identify_customer"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        """Find the customer by the identifiers in the latest message and set the slots."""
        identifiers = identifiers_from_tracker(tracker)
        if identifiers.is_empty:
            logger.info("No identifiers in the message conversation=%s", tracker.sender_id)
            dispatcher.utter_message(response="utter_identity_not_found")
            return []
        try:
            session_factory = deps.get_session_factory()
            profile = await asyncio.to_thread(
                _identify, session_factory, tracker.sender_id, identifiers
            )
        except Exception:
            logger.exception("Customer lookup failed conversation=%s", tracker.sender_id)
            dispatcher.utter_message(response="utter_identity_unavailable")
            return []
        if profile is None:
            logger.info("No customer matched conversation=%s", tracker.sender_id)
            dispatcher.utter_message(response="utter_identity_not_found")
            return []

        first_name = profile.contact_name.split()[0] if profile.contact_name.strip() else ""
        if profile.segment == "b2b":
            dispatcher.utter_message(
                response="utter_identity_confirmed_business",
                customer_name=first_name,
                account_name=profile.account_name,
                team_name=profile.team_name or DEFAULT_TEAM_NAME,
            )
        else:
            dispatcher.utter_message(response="utter_identity_confirmed", customer_name=first_name)
        return [
            SlotSet("customer_email", profile.email),
            SlotSet("account_number", profile.account_number),
            SlotSet("order_number", identifiers.order_number),
            SlotSet("customer_segment", profile.segment),
            SlotSet("account_name", profile.account_name),
            SlotSet("customer_name", profile.contact_name),
        ]
