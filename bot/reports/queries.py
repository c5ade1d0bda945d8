"""The figures of the team leads' reports, computed from stored data.

Every figure covers a :class:`ReportPeriod` (the last ``days`` calendar days in UTC, today
included) and, optionally, a set of teams. Each comes with its definition, a constant
shown beside it on the reports page, in the JSON export and in ``docs/desk.md``.

The queries use only portable SQL (``EXISTS`` sub-queries, ``GROUP BY`` on plain columns,
JSON fields read with SQLAlchemy's ``as_string``/``as_boolean``), so they run unchanged on
SQLite and PostgreSQL; per-day buckets and percentiles are computed in Python.

Which teams a conversation belongs to: tickets count for the team they are with now
(after any transfer); a conversation counts for a team when it has a ticket of that team
or, if it has no ticket at all, when a handoff would be routed there (the dedicated team
of a business account, otherwise Customer Care; see
:func:`bot.handoff.service.route_team`).
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections import Counter
from collections.abc import Collection, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import ColumnElement, Select, false, func, literal, or_, select
from sqlalchemy.orm import Session, aliased

import bot.db.models  # noqa: F401  (every table must be mapped before the first query)
from bot.accounts.models import DEFAULT_TEAM_SLUG, Account, Contact, Segment, Team
from bot.audit.models import AuditEvent
from bot.conversations.models import Conversation, Message, MessageRole, MessageStatus
from bot.db.base import utcnow
from bot.handoff.models import ReasonCode, Ticket

__all__ = [
    "CONVERSATIONS_PER_DAY_DEFINITION",
    "DAY_CHOICES",
    "DEFAULT_DAYS",
    "FIRST_REPLY_DEFINITION",
    "HANDOFF_RATE_DEFINITION",
    "KB_NO_ANSWER_REPLIES",
    "MAX_DAYS",
    "MIN_DAYS",
    "SATISFACTION_DEFINITION",
    "SELF_SERVICE_DEFINITION",
    "TEAM_FILTER_DEFINITION",
    "UNANSWERED_DEFINITION",
    "ConversationsPerDay",
    "DayCount",
    "FirstReplyTimes",
    "HandoffRates",
    "RatingCount",
    "ReasonRate",
    "Report",
    "ReportPeriod",
    "Satisfaction",
    "SelfService",
    "UnansweredQuestion",
    "UnansweredQuestions",
    "build_report",
    "conversations_per_day",
    "first_reply_times",
    "handoff_rates",
    "nearest_rank_percentile",
    "normalise_question",
    "satisfaction",
    "self_service",
    "top_unanswered_questions",
]

MIN_DAYS = 1
MAX_DAYS = 365
DEFAULT_DAYS = 30
DAY_CHOICES: tuple[int, ...] = (7, 30, 90)
"""The ranges offered on the reports page (the JSON endpoint takes any 1–365)."""
TOP_UNANSWERED = 10
MIN_RATING, MAX_RATING = 1, 5
GOOD_RATING = 4

# The knowledge base's "no answer" replies: ``utter_kb_unknown`` and ``utter_kb_unknown_again``
# in domain.yml (a unit test keeps the two in step). The suggestion band is not "unanswered":
# the customer was offered articles.
KB_NO_ANSWER_REPLIES: tuple[str, ...] = (
    "I'm not sure about that one, and I'd rather not guess. Would you like me to bring in a "
    "person from our team, or try asking another way?",
    "I couldn't find an answer to that one either, so I'm bringing in a person from our team "
    "rather than guessing.",
)

CONVERSATIONS_PER_DAY_DEFINITION = (
    "Conversations started each day (UTC) in which the customer wrote at least one message. "
    "A chat page that was opened but never written in is not a conversation."
)
SELF_SERVICE_DEFINITION = (
    "Share of the period's conversations that the bot resolved on its own: it gave at least "
    "one knowledge-base answer citing an article, the conversation has no ticket (no handoff "
    "to a person, whatever became of it), and the customer never said an answer did not "
    "help."
)
HANDOFF_RATE_DEFINITION = (
    "Share of the period's conversations with at least one ticket (a handoff to a person, "
    "including tickets the customer later withdrew), in total and by the reason stored on "
    "the ticket. A conversation handed off twice for different reasons counts under each "
    "reason, so the reasons can add up to more than the total."
)
FIRST_REPLY_DEFINITION = (
    "Minutes from a ticket's creation to the first reply an agent sent the customer, over "
    "the tickets created in the period that have one. p50: half of them were answered within "
    "this time; p90: nine in ten were (nearest-rank percentiles). Waiting time includes hours "
    "when nobody was on duty. Tickets still waiting, or closed without an agent reply, are "
    "counted apart and left out of the percentiles."
)
SATISFACTION_DEFINITION = (
    "Ratings (1 to 5 stars) given in the period by customers whose ticket an agent resolved: "
    "the mean, the number of ratings, how many of each, and the share of 4 or 5 stars. "
    "Customers who did not rate are not counted."
)
UNANSWERED_DEFINITION = (
    "Customer messages in the period's conversations that the bot answered by saying it "
    "was not sure or could not find an answer (no knowledge-base article was close enough, "
    "so it offered a person instead of guessing). Identical questions are grouped after "
    "lower-casing and removing extra spaces and end punctuation; button taps are left out. "
    "The ten most frequent."
)
TEAM_FILTER_DEFINITION = (
    "With a team chosen, tickets count for the team they are with now (after any transfer), "
    "and a conversation counts for the team when it has a ticket of that team or, with no "
    "ticket at all, when a handoff would be routed there (a business account's dedicated "
    "team, otherwise Customer Care)."
)

REASON_LABELS: dict[str, str] = {
    ReasonCode.CUSTOMER_REQUEST.value: "Asked for a person",
    ReasonCode.OFFER_ACCEPTED.value: "Accepted the bot's offer of a person",
    ReasonCode.REPEATED_NO_ANSWER.value: "Two questions in a row without an answer",
    ReasonCode.NEGATIVE_FEEDBACK.value: "Said an answer did not help",
    ReasonCode.FRUSTRATION.value: "Frustration detected",
    ReasonCode.KB_NO_ANSWER.value: "No article found",
    ReasonCode.KB_UNSURE.value: "Bot was unsure",
    ReasonCode.KB_UNAVAILABLE.value: "Knowledge base unavailable",
    ReasonCode.OUT_OF_SCOPE.value: "Out of scope",
    ReasonCode.UNHELPFUL_ANSWER.value: "Unhelpful answer",
}

_END_PUNCTUATION = ".?!…;:,¿¡ "
_SPACES = re.compile(r"\s+")


class _Figure(BaseModel):
    model_config = ConfigDict(frozen=True)


class ReportPeriod(_Figure):
    """The last ``days`` calendar days in UTC, today included: ``start <= t < end``."""

    days: int
    start: dt.datetime
    end: dt.datetime

    @classmethod
    def last(cls, days: int = DEFAULT_DAYS, *, now: dt.datetime | None = None) -> ReportPeriod:
        """The period of the last ``days`` days up to the end of today (UTC).

        Args:
            days: How many calendar days, from :data:`MIN_DAYS` to :data:`MAX_DAYS`.
            now: The current time (tests pass a fixed one); defaults to now.

        Returns:
            The period, from midnight UTC ``days - 1`` days ago to the next midnight.

        Raises:
            ValueError: ``days`` is out of range.
        """
        if not MIN_DAYS <= days <= MAX_DAYS:
            raise ValueError(f"days must be between {MIN_DAYS} and {MAX_DAYS}, not {days}")
        current = (now or utcnow()).astimezone(dt.UTC)
        end = dt.datetime.combine(current.date() + dt.timedelta(days=1), dt.time(), dt.UTC)
        return cls(days=days, start=end - dt.timedelta(days=days), end=end)

    def dates(self) -> list[dt.date]:
        """Every calendar day of the period, oldest first."""
        first = self.start.date()
        return [first + dt.timedelta(days=offset) for offset in range(self.days)]


class DayCount(_Figure):
    """Conversations started on one day."""

    day: dt.date
    conversations: int


class ConversationsPerDay(_Figure):
    """Conversations per day over the period (every day present, zeros included)."""

    days: list[DayCount]
    total: int
    definition: str = CONVERSATIONS_PER_DAY_DEFINITION


class SelfService(_Figure):
    """Self-service resolution rate."""

    conversations: int
    resolved: int
    rate: float | None  # None without any conversation
    definition: str = SELF_SERVICE_DEFINITION


class ReasonRate(_Figure):
    """Handoffs for one reason."""

    reason_code: str
    label: str
    tickets: int
    conversations: int
    rate: float | None


class HandoffRates(_Figure):
    """Handoff rate, in total and by reason (most frequent first)."""

    conversations: int
    handed_off: int
    rate: float | None
    by_reason: list[ReasonRate]
    definition: str = HANDOFF_RATE_DEFINITION


class FirstReplyTimes(_Figure):
    """Time to the first agent reply, in minutes."""

    tickets: int  # created in the period
    answered: int
    waiting: int  # still open, no agent reply yet
    closed_without_reply: int
    p50_minutes: float | None
    p90_minutes: float | None
    definition: str = FIRST_REPLY_DEFINITION


class RatingCount(_Figure):
    """How many ratings gave this many stars."""

    rating: int
    count: int


class Satisfaction(_Figure):
    """Customer satisfaction ratings."""

    count: int
    mean: float | None
    distribution: list[RatingCount]  # 1 to 5, zeros included
    share_good: float | None  # share of 4 or 5 stars
    definition: str = SATISFACTION_DEFINITION


class UnansweredQuestion(_Figure):
    """A question the knowledge base could not answer, grouped by normalised text."""

    text: str  # normalised: the grouping key
    example: str  # the most recent wording, as the customer wrote it
    count: int
    last_asked_at: dt.datetime


class UnansweredQuestions(_Figure):
    """The most frequent unanswered questions."""

    total: int  # unanswered messages in the period, all texts
    questions: list[UnansweredQuestion]
    definition: str = UNANSWERED_DEFINITION


class Report(_Figure):
    """Every figure of the reports page."""

    period: ReportPeriod
    team_ids: list[int] | None  # None: every team
    conversations_per_day: ConversationsPerDay
    self_service: SelfService
    handoffs: HandoffRates
    first_reply: FirstReplyTimes
    satisfaction: Satisfaction
    unanswered: UnansweredQuestions
    team_filter_definition: str = TEAM_FILTER_DEFINITION


# -- helpers --------------------------------------------------------------------------------


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def nearest_rank_percentile(values: Sequence[float], percent: int) -> float | None:
    """The nearest-rank percentile: the smallest value with ``percent`` % of values <= it.

    Args:
        values: The observations (any order).
        percent: 1 to 100.

    Returns:
        An observed value, or ``None`` for no observations.

    Raises:
        ValueError: ``percent`` is out of range.
    """
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in 1..100, not {percent}")
    if not values:
        return None
    ordered = sorted(values)
    rank = (percent * len(ordered) + 99) // 100  # ceil(percent / 100 * n), in integers
    return ordered[rank - 1]


def normalise_question(text: str) -> str:
    """The grouping key of a question: NFKC, lower-case, single spaces, no end punctuation.

    Args:
        text: A customer message.

    Returns:
        The normalised text (may be empty).
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _SPACES.sub(" ", folded).strip(_END_PUNCTUATION)


def _default_team_id(session: Session) -> int | None:
    return session.scalars(select(Team.id).where(Team.slug == DEFAULT_TEAM_SLUG)).first()


def _conversation_in_teams(
    team_ids: Collection[int], default_team_id: int | None
) -> ColumnElement[bool]:
    """SQL: the current conversation counts for one of ``team_ids`` (see module doc)."""
    ids = list(team_ids)
    ticket_of_team = (
        select(Ticket.id)
        .where(Ticket.conversation_id == Conversation.id, Ticket.team_id.in_(ids))
        .exists()
    )
    any_ticket = select(Ticket.id).where(Ticket.conversation_id == Conversation.id).exists()
    dedicated_team = (
        select(Account.team_id)
        .join(Contact, Contact.account_id == Account.id)
        .where(
            Contact.id == Conversation.contact_id,
            Account.segment == Segment.B2B.value,
            Account.team_id.is_not(None),
        )
        .scalar_subquery()
    )
    routed_team = func.coalesce(dedicated_team, literal(default_team_id))
    return or_(ticket_of_team, ~any_ticket & routed_team.in_(ids))


def _has_customer_message() -> ColumnElement[bool]:
    return (
        select(Message.id)
        .where(
            Message.conversation_id == Conversation.id,
            Message.role == MessageRole.CUSTOMER.value,
        )
        .exists()
    )


def _conversations(
    session: Session, *, period: ReportPeriod, team_ids: Collection[int] | None
) -> Select[str]:
    """Ids of the period's conversations (customer wrote at least once), for ``IN``."""
    stmt = select(Conversation.id).where(
        Conversation.created_at >= period.start,
        Conversation.created_at < period.end,
        _has_customer_message(),
    )
    if team_ids is not None:
        stmt = stmt.where(_conversation_in_teams(team_ids, _default_team_id(session)))
    return stmt


def _count(session: Session, stmt: Select[str]) -> int:
    return int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)


# -- figures --------------------------------------------------------------------------------


def conversations_per_day(
    session: Session, *, period: ReportPeriod, team_ids: Collection[int] | None = None
) -> ConversationsPerDay:
    """Conversations started per day (UTC) in which the customer wrote.

    Args:
        session: An open session.
        period: The report period.
        team_ids: Only conversations of these teams; ``None`` for all.

    Returns:
        One count per day of the period, zeros included.
    """
    ids = _conversations(session, period=period, team_ids=team_ids)
    created = session.scalars(select(Conversation.created_at).where(Conversation.id.in_(ids))).all()
    per_day = Counter(moment.astimezone(dt.UTC).date() for moment in created)
    days = [DayCount(day=day, conversations=per_day.get(day, 0)) for day in period.dates()]
    return ConversationsPerDay(days=days, total=sum(day.conversations for day in days))


def self_service(
    session: Session, *, period: ReportPeriod, team_ids: Collection[int] | None = None
) -> SelfService:
    """Self-service resolution rate (see :data:`SELF_SERVICE_DEFINITION`).

    Args:
        session: An open session.
        period: The report period.
        team_ids: Only conversations of these teams; ``None`` for all.

    Returns:
        The conversations, those resolved by the bot alone, and the rate.
    """
    ids = _conversations(session, period=period, team_ids=team_ids)
    knowledge_answer = (
        select(Message.id)
        .where(
            Message.conversation_id == Conversation.id,
            Message.role == MessageRole.BOT.value,
            Message.status != MessageStatus.WITHHELD.value,  # never shown to the customer
            Message.payload["citation"].as_string().is_not(None),
        )
        .exists()
    )
    ticket = select(Ticket.id).where(Ticket.conversation_id == Conversation.id).exists()
    negative_feedback = (
        select(AuditEvent.id)
        .where(
            AuditEvent.conversation_id == Conversation.id,
            AuditEvent.action == "kb.feedback",
            AuditEvent.details["helpful"].as_boolean() == false(),
        )
        .exists()
    )
    resolved = select(Conversation.id).where(
        Conversation.id.in_(ids), knowledge_answer, ~ticket, ~negative_feedback
    )
    total = _count(session, ids)
    done = _count(session, resolved)
    return SelfService(conversations=total, resolved=done, rate=_ratio(done, total))


def handoff_rates(
    session: Session, *, period: ReportPeriod, team_ids: Collection[int] | None = None
) -> HandoffRates:
    """Share of conversations handed to a person, in total and by reason.

    Args:
        session: An open session.
        period: The report period (of the conversations).
        team_ids: Only conversations and tickets of these teams; ``None`` for all.

    Returns:
        The rates, reasons ordered by conversations (most first), then by code.
    """
    ids = _conversations(session, period=period, team_ids=team_ids)
    conditions: list[ColumnElement[bool]] = [Ticket.conversation_id.in_(ids)]
    if team_ids is not None:
        conditions.append(Ticket.team_id.in_(list(team_ids)))
    rows = session.execute(
        select(
            Ticket.reason_code,
            func.count(Ticket.id),
            func.count(func.distinct(Ticket.conversation_id)),
        )
        .where(*conditions)
        .group_by(Ticket.reason_code)
    ).all()
    handed_off = int(
        session.scalar(select(func.count(func.distinct(Ticket.conversation_id))).where(*conditions))
        or 0
    )
    total = _count(session, ids)
    by_reason = sorted(
        (
            ReasonRate(
                reason_code=code,
                label=REASON_LABELS.get(code, code.replace("_", " ").capitalize()),
                tickets=int(tickets),
                conversations=int(conversations),
                rate=_ratio(int(conversations), total),
            )
            for code, tickets, conversations in rows
        ),
        key=lambda reason: (-reason.conversations, reason.reason_code),
    )
    return HandoffRates(
        conversations=total,
        handed_off=handed_off,
        rate=_ratio(handed_off, total),
        by_reason=by_reason,
    )


def first_reply_times(
    session: Session, *, period: ReportPeriod, team_ids: Collection[int] | None = None
) -> FirstReplyTimes:
    """Time from ticket creation to the first agent reply: p50 and p90 in minutes.

    Args:
        session: An open session.
        period: The report period (of ticket creation).
        team_ids: Only tickets of these teams; ``None`` for all.

    Returns:
        The percentiles and the counts of answered, waiting and unanswered closed tickets.
    """
    stmt = select(Ticket.created_at, Ticket.first_agent_reply_at, Ticket.closed_at).where(
        Ticket.created_at >= period.start, Ticket.created_at < period.end
    )
    if team_ids is not None:
        stmt = stmt.where(Ticket.team_id.in_(list(team_ids)))
    minutes: list[float] = []
    waiting = closed_without_reply = 0
    rows = session.execute(stmt).all()
    for created_at, replied_at, closed_at in rows:
        if replied_at is not None:
            minutes.append(max((replied_at - created_at).total_seconds(), 0.0) / 60)
        elif closed_at is None:
            waiting += 1
        else:
            closed_without_reply += 1
    return FirstReplyTimes(
        tickets=len(rows),
        answered=len(minutes),
        waiting=waiting,
        closed_without_reply=closed_without_reply,
        p50_minutes=nearest_rank_percentile(minutes, 50),
        p90_minutes=nearest_rank_percentile(minutes, 90),
    )


def satisfaction(
    session: Session, *, period: ReportPeriod, team_ids: Collection[int] | None = None
) -> Satisfaction:
    """Ratings given in the period: mean, count, distribution and share of 4–5 stars.

    Args:
        session: An open session.
        period: The report period (of the rating).
        team_ids: Only tickets of these teams; ``None`` for all.

    Returns:
        The satisfaction figures.
    """
    stmt = (
        select(Ticket.rating, func.count(Ticket.id).label("n"))
        .where(
            Ticket.rating.is_not(None),
            Ticket.rated_at >= period.start,
            Ticket.rated_at < period.end,
        )
        .group_by(Ticket.rating)
    )
    if team_ids is not None:
        stmt = stmt.where(Ticket.team_id.in_(list(team_ids)))
    counts = {
        int(row.rating): int(row.n) for row in session.execute(stmt) if row.rating is not None
    }
    distribution = [
        RatingCount(rating=stars, count=counts.get(stars, 0))
        for stars in range(MIN_RATING, MAX_RATING + 1)
    ]
    total = sum(item.count for item in distribution)
    stars_given = sum(item.rating * item.count for item in distribution)
    good = sum(item.count for item in distribution if item.rating >= GOOD_RATING)
    return Satisfaction(
        count=total,
        mean=stars_given / total if total else None,
        distribution=distribution,
        share_good=_ratio(good, total),
    )


def top_unanswered_questions(
    session: Session,
    *,
    period: ReportPeriod,
    team_ids: Collection[int] | None = None,
    limit: int = TOP_UNANSWERED,
    no_answer_replies: Sequence[str] = KB_NO_ANSWER_REPLIES,
) -> UnansweredQuestions:
    """The customer questions the knowledge base most often had no answer for.

    An unanswered question is the customer's latest message before a bot reply whose
    text is one of ``no_answer_replies`` (button taps are left out).

    Args:
        session: An open session.
        period: The report period (of the conversations).
        team_ids: Only conversations of these teams; ``None`` for all.
        limit: How many questions to return.
        no_answer_replies: The knowledge base's "no answer" texts.

    Returns:
        The questions by count (most first), then most recently asked.
    """
    ids = _conversations(session, period=period, team_ids=team_ids)
    no_answer = aliased(Message, name="no_answer")
    asked = aliased(Message, name="asked")
    question_id = (
        select(func.max(asked.id))
        .where(
            asked.conversation_id == no_answer.conversation_id,
            asked.role == MessageRole.CUSTOMER.value,
            asked.id < no_answer.id,
        )
        .scalar_subquery()
    )
    question_ids = select(question_id).where(
        no_answer.role == MessageRole.BOT.value,
        no_answer.status != MessageStatus.WITHHELD.value,
        no_answer.text.in_(list(no_answer_replies)),
        no_answer.conversation_id.in_(ids),
    )
    rows = session.execute(
        select(Message.text, Message.payload, Message.created_at)
        .where(Message.id.in_(question_ids))
        .order_by(Message.created_at, Message.id)
    )
    counts: Counter[str] = Counter()
    latest: dict[str, tuple[str, dt.datetime]] = {}
    for row in rows:
        text: str = row.text
        payload: dict[str, Any] | None = row.payload
        created_at: dt.datetime = row.created_at
        if (payload or {}).get("button_payload") or text.lstrip().startswith("/"):
            continue  # a button tap, not a question
        key = normalise_question(text)
        if not key:
            continue
        counts[key] += 1
        latest[key] = (text.strip(), created_at)  # rows are oldest first
    ranked = sorted(counts, key=lambda key: (-counts[key], -latest[key][1].timestamp(), key))
    questions = [
        UnansweredQuestion(
            text=key, example=latest[key][0], count=counts[key], last_asked_at=latest[key][1]
        )
        for key in ranked[:limit]
    ]
    return UnansweredQuestions(total=sum(counts.values()), questions=questions)


def build_report(
    session: Session,
    *,
    days: int = DEFAULT_DAYS,
    team_ids: Collection[int] | None = None,
    now: dt.datetime | None = None,
) -> Report:
    """Compute every figure of the reports page.

    Args:
        session: An open session.
        days: The last this many calendar days (UTC), today included; 1 to 365.
        team_ids: Only these teams; ``None`` for every team (and unrouted tickets).
        now: The current time (tests pass a fixed one).

    Returns:
        The report.

    Raises:
        ValueError: ``days`` is out of range.
    """
    period = ReportPeriod.last(days, now=now)
    teams = None if team_ids is None else sorted(set(team_ids))
    return Report(
        period=period,
        team_ids=teams,
        conversations_per_day=conversations_per_day(session, period=period, team_ids=teams),
        self_service=self_service(session, period=period, team_ids=teams),
        handoffs=handoff_rates(session, period=period, team_ids=teams),
        first_reply=first_reply_times(session, period=period, team_ids=teams),
        satisfaction=satisfaction(session, period=period, team_ids=teams),
        unanswered=top_unanswered_questions(session, period=period, team_ids=teams),
    )
