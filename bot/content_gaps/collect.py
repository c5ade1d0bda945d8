"""Find the customer questions the knowledge base failed, from the stored conversations.

Two kinds, over a :class:`bot.reports.queries.ReportPeriod` (by when the bot replied, or
when the customer gave feedback):

* **unanswered**: the customer's latest message before a bot reply that is one of the
  knowledge base's "I don't know" texts (:data:`bot.reports.queries.KB_NO_ANSWER_REPLIES`,
  the same rule as the reports' top unanswered questions);
* **unhelpful**: the question behind an answer the customer said did not help. Feedback is
  a ``kb.feedback`` audit event (``helpful: false``) with the conversation and the cited
  article but no message id, so the answer is the conversation's latest delivered bot
  reply with a citation (of that article when one is named) before the event, and the
  question is the latest message the customer *typed* before that answer (a tap on a
  suggested article's button is skipped to reach the question that led to it).

Left out: button taps and ``/commands``; replies withheld because a person had taken over;
questions asked while an agent owned the conversation (an assigned ticket, from
``assigned_at`` until it closed); text that is empty or mostly not letters once control
characters are removed (binary junk). Texts are cleaned and cut to
:data:`MAX_QUESTION_CHARS`.

Work is bounded: only the most recent ``limit`` questions of each kind are read, and the
most recent ``limit`` of both together are kept.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import false, func, select
from sqlalchemy.orm import Session, aliased

import bot.db.models  # noqa: F401  (every table must be mapped before the first query)
from bot.accounts.models import Account, Contact
from bot.audit.models import AuditEvent
from bot.conversations.models import Conversation, Message, MessageRole, MessageStatus
from bot.handoff.models import Ticket
from bot.reports.queries import KB_NO_ANSWER_REPLIES, ReportPeriod

__all__ = [
    "DEFAULT_LIMIT",
    "FEEDBACK_ACTION",
    "KIND_UNANSWERED",
    "KIND_UNHELPFUL",
    "MAX_QUESTION_CHARS",
    "Collected",
    "GapQuestion",
    "clean_question",
    "collect_questions",
]

FEEDBACK_ACTION = "kb.feedback"
KIND_UNANSWERED: Literal["unanswered"] = "unanswered"
KIND_UNHELPFUL: Literal["unhelpful"] = "unhelpful"
GapKind = Literal["unanswered", "unhelpful"]
DEFAULT_LIMIT = 1000
"""Most questions considered per period (the most recent)."""
MAX_QUESTION_CHARS = 300
MIN_LETTER_SHARE = 0.3
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


@dataclass(frozen=True)
class GapQuestion:
    """One question the knowledge base failed.

    Attributes:
        message_id: The customer's message.
        conversation_id: Its conversation.
        contact_id: The conversation's contact (``None`` for an unidentified customer).
        segment: The contact's account segment (``b2b``/``b2c``), or ``None``.
        text: The question as the customer typed it, cleaned (see :func:`clean_question`).
        asked_at: When the customer sent it.
        kind: ``unanswered`` or ``unhelpful``.
        article_id: The article of the unhelpful answer (``None`` for unanswered).
    """

    message_id: int
    conversation_id: str
    contact_id: int | None
    segment: str | None
    text: str
    asked_at: dt.datetime
    kind: GapKind
    article_id: str | None = None


@dataclass(frozen=True)
class Collected:
    """The questions of a period, most recent first.

    Attributes:
        questions: At most ``limit`` questions.
        found: Unanswered replies plus negative feedback events in the period, before
            anything was left out or cut.
        limit: The cap that applied.
    """

    questions: list[GapQuestion]
    found: int
    limit: int

    @property
    def truncated(self) -> bool:
        """Whether older questions were left out because of the cap."""
        return self.found > self.limit


def clean_question(text: str, *, max_chars: int = MAX_QUESTION_CHARS) -> str | None:
    """A customer message fit to show and embed, or ``None`` for junk.

    NFKC-normalises, drops control, format, surrogate, private-use and unassigned
    characters, collapses white space and cuts to ``max_chars`` (ending with "…").

    Args:
        text: The stored message text.
        max_chars: Longest text kept.

    Returns:
        The cleaned text, or ``None`` if it is empty, a command or mostly not letters.
    """
    folded = unicodedata.normalize("NFKC", text)
    kept = "".join(
        " " if char.isspace() else char
        for char in folded
        if char.isspace() or unicodedata.category(char) not in _DROPPED_CATEGORIES
    )
    cleaned = " ".join(kept.split())
    if len(cleaned) < 2 or cleaned.startswith("/") or "\ufffd" in cleaned:
        return None
    visible = [char for char in cleaned if not char.isspace()]
    letters = sum(1 for char in visible if char.isalpha())
    if letters < MIN_LETTER_SHARE * len(visible):
        return None
    if len(cleaned) > max_chars:
        cleaned = cleaned[: max_chars - 1].rstrip() + "…"
    return cleaned


def _is_typed(payload: dict[str, Any] | None, text: str) -> bool:
    return not (payload or {}).get("button_payload") and not text.lstrip().startswith("/")


def _citation_article(payload: dict[str, Any] | None) -> str | None:
    citation = (payload or {}).get("citation")
    if not isinstance(citation, dict):
        return None
    article_id = citation.get("article_id")
    return article_id if isinstance(article_id, str) else None


@dataclass(frozen=True)
class _Asked:
    message_id: int
    conversation_id: str
    text: str
    payload: dict[str, Any] | None
    asked_at: dt.datetime


def _unanswered(
    session: Session, *, period: ReportPeriod, limit: int, replies: Sequence[str]
) -> tuple[list[_Asked], int]:
    """The latest customer message before each "no answer" reply, most recent first."""
    reply = aliased(Message, name="reply")
    asked = aliased(Message, name="asked")
    conditions = (
        reply.role == MessageRole.BOT.value,
        reply.status != MessageStatus.WITHHELD.value,
        reply.text.in_(list(replies)),
        reply.created_at >= period.start,
        reply.created_at < period.end,
    )
    found = int(session.scalar(select(func.count(reply.id)).where(*conditions)) or 0)
    question_id = (
        select(func.max(asked.id))
        .where(
            asked.conversation_id == reply.conversation_id,
            asked.role == MessageRole.CUSTOMER.value,
            asked.id < reply.id,
        )
        .scalar_subquery()
    )
    found_ids: Sequence[int | None] = session.scalars(
        select(question_id).where(*conditions).order_by(reply.id.desc()).limit(limit)
    ).all()
    ids = [int(value) for value in found_ids if value is not None]
    rows = session.execute(
        select(
            Message.id, Message.conversation_id, Message.text, Message.payload, Message.created_at
        ).where(Message.id.in_(ids))
    ).all()
    by_id = {
        row.id: _Asked(row.id, row.conversation_id, row.text, row.payload, row.created_at)
        for row in rows
    }
    # One question can precede two "no answer" replies; keep it once.
    ordered = list(dict.fromkeys(ids))
    return [by_id[number] for number in ordered if number in by_id], found


def _unhelpful(
    session: Session, *, period: ReportPeriod, limit: int
) -> tuple[list[tuple[_Asked, str | None]], int]:
    """The question behind each negative feedback event, and the answered article."""
    conditions = (
        AuditEvent.action == FEEDBACK_ACTION,
        AuditEvent.details["helpful"].as_boolean() == false(),
        AuditEvent.conversation_id.is_not(None),
        AuditEvent.at >= period.start,
        AuditEvent.at < period.end,
    )
    found = int(session.scalar(select(func.count(AuditEvent.id)).where(*conditions)) or 0)
    events = session.execute(
        select(AuditEvent.conversation_id, AuditEvent.at, AuditEvent.details)
        .where(*conditions)
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(limit)
    ).all()
    if not events:
        return [], found
    latest = max(event.at for event in events)
    conversation_ids = sorted({event.conversation_id for event in events})
    messages: dict[str, list[Any]] = {}
    for row in session.execute(
        select(
            Message.id,
            Message.conversation_id,
            Message.role,
            Message.text,
            Message.payload,
            Message.status,
            Message.created_at,
        )
        .where(
            Message.conversation_id.in_(conversation_ids),
            Message.role.in_([MessageRole.CUSTOMER.value, MessageRole.BOT.value]),
            Message.created_at <= latest,
        )
        .order_by(Message.id)
    ):
        messages.setdefault(row.conversation_id, []).append(row)
    found_questions: list[tuple[_Asked, str | None]] = []
    for event in events:
        details = event.details if isinstance(event.details, dict) else {}
        wanted = details.get("article_id") if isinstance(details.get("article_id"), str) else None
        history = [
            row for row in messages.get(event.conversation_id, []) if row.created_at <= event.at
        ]
        answer_at = _answer_position(history, wanted)
        if answer_at is None:
            continue
        question = next(
            (
                row
                for row in reversed(history[:answer_at])
                if row.role == MessageRole.CUSTOMER.value and _is_typed(row.payload, row.text)
            ),
            None,
        )
        if question is None:
            continue
        article_id = wanted or _citation_article(history[answer_at].payload)
        asked = _Asked(
            question.id,
            question.conversation_id,
            question.text,
            question.payload,
            question.created_at,
        )
        found_questions.append((asked, article_id))
    return found_questions, found


def _answer_position(history: Sequence[Any], article_id: str | None) -> int | None:
    """Index of the latest delivered cited bot reply (of ``article_id`` if given)."""
    for position in range(len(history) - 1, -1, -1):
        row = history[position]
        if row.role != MessageRole.BOT.value or row.status == MessageStatus.WITHHELD.value:
            continue
        cited = _citation_article(row.payload)
        if cited is not None and (article_id is None or cited == article_id):
            return position
    return None


def _agent_owned(
    session: Session, conversation_ids: Iterable[str]
) -> dict[str, list[tuple[dt.datetime, dt.datetime | None]]]:
    """When an agent owned each conversation: ``(assigned_at, closed_at)`` spans."""
    ids = sorted(set(conversation_ids))
    spans: dict[str, list[tuple[dt.datetime, dt.datetime | None]]] = {}
    if not ids:
        return spans
    for row in session.execute(
        select(Ticket.conversation_id, Ticket.assigned_at, Ticket.closed_at).where(
            Ticket.conversation_id.in_(ids), Ticket.assigned_at.is_not(None)
        )
    ):
        spans.setdefault(row.conversation_id, []).append((row.assigned_at, row.closed_at))
    return spans


def _owned_at(spans: Sequence[tuple[dt.datetime, dt.datetime | None]], moment: dt.datetime) -> bool:
    return any(start <= moment and (end is None or moment < end) for start, end in spans)


def _contacts(
    session: Session, conversation_ids: Iterable[str]
) -> dict[str, tuple[int | None, str | None]]:
    """Each conversation's contact and the contact's account segment."""
    ids = sorted(set(conversation_ids))
    if not ids:
        return {}
    rows = session.execute(
        select(Conversation.id, Conversation.contact_id, Account.segment)
        .outerjoin(Contact, Contact.id == Conversation.contact_id)
        .outerjoin(Account, Account.id == Contact.account_id)
        .where(Conversation.id.in_(ids))
    )
    return {row.id: (row.contact_id, row.segment) for row in rows}


def collect_questions(
    session: Session,
    *,
    period: ReportPeriod,
    limit: int = DEFAULT_LIMIT,
    no_answer_replies: Sequence[str] = KB_NO_ANSWER_REPLIES,
) -> Collected:
    """The period's failed questions (see the module docstring), most recent first.

    Args:
        session: An open session.
        period: When the bot replied "I don't know" or the customer gave the feedback.
        limit: Most questions kept (the most recent); at least 1.
        no_answer_replies: The knowledge base's "no answer" texts.

    Returns:
        The questions, how many were found before filtering and cutting, and the cap.

    Raises:
        ValueError: ``limit`` is below 1.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    unanswered, found_unanswered = _unanswered(
        session, period=period, limit=limit, replies=no_answer_replies
    )
    unhelpful, found_unhelpful = _unhelpful(session, period=period, limit=limit)
    candidates: list[tuple[_Asked, GapKind, str | None]] = [
        (asked, KIND_UNANSWERED, None) for asked in unanswered
    ]
    candidates.extend((asked, KIND_UNHELPFUL, article) for asked, article in unhelpful)
    conversation_ids = [asked.conversation_id for asked, _, _ in candidates]
    owned = _agent_owned(session, conversation_ids)
    contacts = _contacts(session, conversation_ids)
    questions: list[GapQuestion] = []
    seen: set[tuple[int, str]] = set()
    for asked, kind, article_id in candidates:
        if (asked.message_id, kind) in seen or not _is_typed(asked.payload, asked.text):
            continue
        if _owned_at(owned.get(asked.conversation_id, []), asked.asked_at):
            continue
        text = clean_question(asked.text)
        if text is None:
            continue
        seen.add((asked.message_id, kind))
        contact_id, segment = contacts.get(asked.conversation_id, (None, None))
        questions.append(
            GapQuestion(
                message_id=asked.message_id,
                conversation_id=asked.conversation_id,
                contact_id=contact_id,
                segment=segment,
                text=text,
                asked_at=asked.asked_at,
                kind=kind,
                article_id=article_id,
            )
        )
    questions.sort(key=lambda question: (question.asked_at, question.message_id), reverse=True)
    return Collected(
        questions=questions[:limit], found=found_unanswered + found_unhelpful, limit=limit
    )
