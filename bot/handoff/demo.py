"""Demo canned replies for the desk (shared ones and a few per team).

:func:`load_demo_canned_replies` is idempotent: rows are matched by their unique
``shortcut``, so running set-up twice adds nothing the second time. It is called from
:func:`bot.accounts.demo.load_demo_data`, after the teams exist.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

import bot.db.models  # noqa: F401  (every table must be mapped before the first query)
from bot.accounts.models import DEFAULT_TEAM_SLUG, Team
from bot.handoff.models import CannedReply

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _CannedSpec:
    shortcut: str
    title: str
    body: str
    team_slug: str | None = None  # None: shared by every team


CANNED_REPLIES: tuple[_CannedSpec, ...] = (
    _CannedSpec(
        "hello",
        "Greeting",
        "Hello, thanks for waiting! I've read your conversation with our assistant, "
        "so there's no need to repeat yourself. Let me look into this for you.",
    ),
    _CannedSpec(
        "checking",
        "Checking now",
        "Thanks, I'm checking this now. It may take a couple of minutes; I'll stay in this chat.",
    ),
    _CannedSpec(
        "anything-else",
        "Anything else?",
        "Is there anything else I can help you with today?",
    ),
    _CannedSpec(
        "goodbye",
        "Closing",
        "Thanks for contacting Kestrel Home & Office. If anything else comes up, "
        "just write here; our assistant is available around the clock.",
    ),
    _CannedSpec(
        "order-number",
        "Ask for the order number",
        "Could you give me the order number? It starts with ORD- and is in your "
        "order confirmation e-mail.",
        DEFAULT_TEAM_SLUG,
    ),
    _CannedSpec(
        "return-label",
        "Return label sent",
        "I've sent a prepaid return label to the e-mail address on your order. "
        "Once we receive the item, your refund usually arrives within 5 working days.",
        DEFAULT_TEAM_SLUG,
    ),
    _CannedSpec(
        "account-manager",
        "Account manager follows up",
        "I've passed this to your account manager, who will follow up by e-mail "
        "within one working day.",
        "key-accounts-dach",
    ),
    _CannedSpec(
        "invoice-copy",
        "Invoice copy",
        "I've sent a copy of the invoice to your accounts-payable address. "
        "You can also download every invoice from the business portal.",
        "key-accounts-nordics",
    ),
)


def load_demo_canned_replies(session: Session) -> int:
    """Add the demo canned replies that are not there yet (does not commit).

    A team-specific reply whose team does not exist is skipped.

    Args:
        session: The open session; the caller commits.

    Returns:
        How many replies were added.
    """
    existing = set(session.scalars(select(CannedReply.shortcut)))
    teams = {team.slug: team.id for team in session.scalars(select(Team))}
    added = 0
    for spec in CANNED_REPLIES:
        if spec.shortcut in existing:
            continue
        if spec.team_slug is not None and spec.team_slug not in teams:
            logger.warning("no team %r for canned reply %r", spec.team_slug, spec.shortcut)
            continue
        session.add(
            CannedReply(
                shortcut=spec.shortcut,
                title=spec.title,
                body=spec.body,
                team_id=teams[spec.team_slug] if spec.team_slug else None,
            )
        )
        added += 1
    session.flush()
    logger.info("demo canned replies loaded: %s new", added)
    return added
