"""Reports for team leads and admins: the figures page and its JSON export.

* ``GET /desk/reports``: charts (Chart.js, served locally, drawn by ``/static/reports.js``
  from a JSON data block: the CSP forbids inline scripts), big figures, the top unanswered
  questions, and every figure's definition beside it. Each chart has a summary sentence
  and its numbers as a table.
* ``GET /desk/reports.json``: the same figures as JSON.

Both take ``days`` (1–365, default 30; the page offers 7, 30 and 90) and ``team`` (a team
slug). Leads see their own teams (all of them together by default); admins see every
team, and by default everything, unrouted tickets included. Agents and editors get 403.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.accounts.models import Team
from bot.agents.models import Agent, Role
from bot.reports.queries import (
    DAY_CHOICES,
    DEFAULT_DAYS,
    MAX_DAYS,
    MIN_DAYS,
    Report,
    build_report,
)
from bot.web.auth import CurrentSessionDep, require_roles
from bot.web.deps import SessionDep, TemplatesDep
from bot.web.vendor import vendor_url

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/desk", tags=["reports"])

LeadDep = Annotated[Agent, Depends(require_roles(Role.LEAD.value, Role.ADMIN.value))]
DaysQuery = Annotated[
    int, Query(ge=MIN_DAYS, le=MAX_DAYS, description="The last this many days (UTC).")
]
TeamQuery = Annotated[str | None, Query(max_length=64, description="A team slug.")]


def visible_teams(session: Session, agent: Agent) -> list[Team]:
    """The teams whose reports an agent may see: every team for admins, else their own.

    Args:
        session: An open session.
        agent: A lead or an admin.

    Returns:
        The teams, by name.
    """
    if agent.role == Role.ADMIN.value:
        return list(session.scalars(select(Team).order_by(Team.name)))
    return sorted(agent.teams, key=lambda team: team.name)


def report_scope(
    session: Session, *, agent: Agent, team_slug: str | None
) -> tuple[list[Team], Team | None, list[int] | None]:
    """Which teams a report covers.

    Args:
        session: An open session.
        agent: A lead or an admin.
        team_slug: The chosen team, or ``None``/empty for the default.

    Returns:
        The teams the agent may choose from, the chosen team, and the team ids to filter
        on (``None``: no filter, for an admin who chose no team).

    Raises:
        HTTPException: 404 if the slug names no team the agent may see.
    """
    teams = visible_teams(session, agent)
    if team_slug:
        chosen = next((team for team in teams if team.slug == team_slug), None)
        if chosen is None:
            logger.info("reports: agent=%s asked for team %r it may not see", agent.id, team_slug)
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="No such team.")
        return teams, chosen, [chosen.id]
    if agent.role == Role.ADMIN.value:
        return teams, None, None
    return teams, None, [team.id for team in teams]


def format_percent(rate: float | None) -> str:
    """``0.254`` → ``"25%"``; ``None`` → an em dash."""
    return "—" if rate is None else f"{rate * 100:.0f}%"


def format_minutes(minutes: float | None) -> str:
    """A duration for people: ``"3.5 min"``, ``"42 min"``, ``"2 h 5 min"``, ``"1 d 3 h"``."""
    if minutes is None:
        return "—"
    if minutes < 10:
        return f"{minutes:.1f} min"
    whole = round(minutes)
    if whole < 60:
        return f"{whole} min"
    hours, mins = divmod(whole, 60)
    if hours < 24:
        return f"{hours} h {mins} min" if mins else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def chart_data(report: Report) -> dict[str, Any]:
    """What ``reports.js`` draws: labels and values of the three charts."""
    return {
        "perDay": {
            "labels": [day.day.strftime("%d %b") for day in report.conversations_per_day.days],
            "values": [day.conversations for day in report.conversations_per_day.days],
        },
        "reasons": {
            "labels": [reason.label for reason in report.handoffs.by_reason],
            "values": [reason.conversations for reason in report.handoffs.by_reason],
        },
        "ratings": {
            "labels": [f"{item.rating} ★" for item in report.satisfaction.distribution],
            "values": [item.count for item in report.satisfaction.distribution],
        },
    }


def chart_summaries(report: Report) -> dict[str, str]:
    """One sentence per chart: its text alternative."""
    per_day = report.conversations_per_day
    busiest = max(per_day.days, key=lambda day: day.conversations, default=None)
    if busiest is None or busiest.conversations == 0:
        day_text = f"No conversations in these {len(per_day.days)} days."
    else:
        day_text = (
            f"{per_day.total} conversations in {len(per_day.days)} days; the busiest day was "
            f"{busiest.day:%d %B} with {busiest.conversations}."
        )
    handoffs = report.handoffs
    if handoffs.by_reason:
        top = handoffs.by_reason[0]
        reason_text = (
            f"{handoffs.handed_off} of {handoffs.conversations} conversations were handed to "
            f"a person; the most frequent reason was “{top.label}” ({top.conversations})."
        )
    else:
        reason_text = "No conversation was handed to a person."
    rated = report.satisfaction
    if rated.count and rated.mean is not None:
        rating_text = (
            f"{rated.count} ratings, {rated.mean:.1f} stars on average; "
            f"{format_percent(rated.share_good)} gave 4 or 5 stars."
        )
    else:
        rating_text = "No ratings in this period."
    return {"perDay": day_text, "reasons": reason_text, "ratings": rating_text}


@router.get("/reports", response_class=HTMLResponse, name="desk_reports")
def reports_page(
    request: Request,
    agent: LeadDep,
    row: CurrentSessionDep,
    session: SessionDep,
    templates: TemplatesDep,
    days: DaysQuery = DEFAULT_DAYS,
    team: TeamQuery = None,
) -> HTMLResponse:
    """The reports page: charts, figures and their definitions."""
    teams, chosen, team_ids = report_scope(session, agent=agent, team_slug=team)
    report = build_report(session, days=days, team_ids=team_ids)
    day_choices = sorted({*DAY_CHOICES, days})
    json_query = f"?days={days}" + (f"&team={chosen.slug}" if chosen else "")
    return templates.TemplateResponse(
        request,
        "reports.html",
        {
            "agent": agent,
            "csrf_token": row.csrf_token,
            "report": report,
            "teams": teams,
            "chosen_team": chosen,
            "is_admin": agent.role == Role.ADMIN.value,
            "days": days,
            "day_choices": day_choices,
            "json_url": f"/desk/reports.json{json_query}",
            "chart_data": chart_data(report),
            "summaries": chart_summaries(report),
            "chart_js": vendor_url("chart.umd.js"),
            "percent": format_percent,
            "minutes": format_minutes,
        },
    )


@router.get("/reports.json", name="desk_reports_json")
def reports_json(
    agent: LeadDep,
    session: SessionDep,
    days: DaysQuery = DEFAULT_DAYS,
    team: TeamQuery = None,
) -> Report:
    """The report's figures, with their definitions, as JSON."""
    _, _, team_ids = report_scope(session, agent=agent, team_slug=team)
    return build_report(session, days=days, team_ids=team_ids)
