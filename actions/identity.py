"""Identify the customer from an e-mail address, account number or order number.

``action_identify_customer`` takes the entities Rasa extracted (``email``,
``account_number``, ``order_number``) and fills any gap by parsing the message with
spaCy (:func:`actions.parsing.extract_identifiers`), then hands them to the bot service,
which links the conversation to the contact they point to. Until the contact is
verified, nothing account-specific is revealed: the reply is the same whether the
details matched or not (so nobody can probe which e-mails are customers), no identity
slot is set, and the claim is shown only to agents, marked unverified, where it routes
a business contact's ticket to the account's team.
"""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import deps
from actions.clients.bot_api import BotServiceError
from actions.parsing import (
    Identifiers,
    extract_identifiers,
    normalize_account_number,
    normalize_email,
    normalize_order_number,
)

__all__ = ["ActionIdentifyCustomer", "identifiers_from_tracker"]

logger = logging.getLogger(__name__)


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


class ActionIdentifyCustomer(Action):
    """Note who the customer says they are, without revealing anything about the account."""

    def name(self) -> str:
        """Return the action's name."""
        return "action_identify_customer"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        """Pass the identifiers in the latest message to the bot service (unverified)."""
        identifiers = identifiers_from_tracker(tracker)
        if identifiers.is_empty:
            logger.info("No identifiers in the message conversation=%s", tracker.sender_id)
            dispatcher.utter_message(response="utter_identity_not_found")
            return []
        try:
            noted = await deps.get_bot_service().note_identity_claim(
                conversation_id=tracker.sender_id,
                email=identifiers.email,
                account_number=identifiers.account_number,
                order_number=identifiers.order_number,
            )
        except BotServiceError as exc:
            logger.error(
                "Customer lookup failed conversation=%s: %s", tracker.sender_id, exc.message
            )
            dispatcher.utter_message(response="utter_identity_unavailable")
            return []
        logger.info(
            "Identity claim noted conversation=%s matched=%s", tracker.sender_id, noted.matched
        )
        dispatcher.utter_message(response="utter_identity_noted")
        return [SlotSet("identity_claimed", True)]
