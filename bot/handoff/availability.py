"""Is a team there to answer? Business hours and who is signed in.

A team's ``business_hours`` is ``{"timezone": "Europe/Berlin", "days": {"mon": ["08:00",
"20:00"], ...}}``; a team without hours is always open. An agent counts as online while
they have a desk session seen within :data:`ONLINE_WITHIN`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.accounts.models import Team
from bot.agents.models import Agent, AgentSession, agent_teams

ONLINE_WITHIN = dt.timedelta(minutes=10)
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_BUSINESS_HOURS: dict[str, Any] = {
    "timezone": "Europe/Berlin",
    "days": {day: ["08:00", "20:00"] for day in _DAYS[:5]} | {"sat": ["09:00", "17:00"]},
}


@dataclass(frozen=True)
class Availability:
    """Whether a team can answer now, and if not, when it opens next."""

    open_now: bool
    agents_online: int
    next_open: dt.datetime | None  # in the team's time zone; None while open or no hours

    @property
    def available(self) -> bool:
        """True when the team is within its hours and someone is signed in."""
        return self.open_now and self.agents_online > 0


def _zone(hours: dict[str, Any]) -> dt.tzinfo:
    try:
        return ZoneInfo(str(hours.get("timezone") or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def _span(hours: dict[str, Any], day: dt.date, zone: dt.tzinfo) -> tuple[dt.datetime, dt.datetime]:
    raw = (hours.get("days") or {}).get(_DAYS[day.weekday()])
    if not raw or len(raw) != 2:
        raise LookupError
    start, end = (dt.time.fromisoformat(str(value)) for value in raw)
    return (dt.datetime.combine(day, start, zone), dt.datetime.combine(day, end, zone))


def within_hours(hours: dict[str, Any] | None, now: dt.datetime) -> tuple[bool, dt.datetime | None]:
    """Whether ``now`` is within the hours, and the next opening time if it is not.

    Args:
        hours: A team's business hours, or ``None`` (always open).
        now: An aware datetime.

    Returns:
        ``(open_now, next_open)``; ``next_open`` is ``None`` when open or never open.
    """
    if not hours:
        return True, None
    zone = _zone(hours)
    local = now.astimezone(zone)
    for offset in range(8):
        day = local.date() + dt.timedelta(days=offset)
        try:
            start, end = _span(hours, day, zone)
        except (LookupError, ValueError):
            continue
        if offset == 0 and start <= local < end:
            return True, None
        if start > local:
            return False, start
    return False, None


def agents_online(session: Session, *, team_id: int, now: dt.datetime) -> int:
    """Count active agents of a team with a desk session seen recently.

    Args:
        session: The open session.
        team_id: The team.
        now: The current time.

    Returns:
        How many distinct agents are online.
    """
    return int(
        session.scalar(
            select(func.count(func.distinct(Agent.id)))
            .join(agent_teams, agent_teams.c.agent_id == Agent.id)
            .join(AgentSession, AgentSession.agent_id == Agent.id)
            .where(
                agent_teams.c.team_id == team_id,
                Agent.is_active.is_(True),
                AgentSession.second_factor_pending.is_(False),
                AgentSession.expires_at > now,
                AgentSession.last_seen_at > now - ONLINE_WITHIN,
            )
        )
        or 0
    )


def team_availability(session: Session, *, team: Team | None, now: dt.datetime) -> Availability:
    """Say whether ``team`` can answer now.

    Args:
        session: The open session.
        team: The team (``None``: an unrouted ticket, which nobody can answer now).
        now: The current time (aware).

    Returns:
        The availability.
    """
    if team is None:
        return Availability(open_now=False, agents_online=0, next_open=None)
    open_now, next_open = within_hours(team.business_hours, now)
    online = agents_online(session, team_id=team.id, now=now) if open_now else 0
    return Availability(open_now=open_now, agents_online=online, next_open=next_open)


def describe_wait(availability: Availability) -> str:
    """One honest sentence on when the customer can expect a person.

    Args:
        availability: The team's availability.

    Returns:
        A sentence for the customer.
    """
    if availability.available:
        return "Someone from the team is online and will join shortly."
    if availability.next_open is not None:
        when = availability.next_open.strftime("%A at %H:%M %Z")
        return (
            f"The team is away right now and back on {when}. Your request is saved, and "
            "their reply will appear in this chat."
        )
    return (
        "Nobody from the team is signed in right now. Your request is saved, and their "
        "reply will appear in this chat as soon as someone is back."
    )
