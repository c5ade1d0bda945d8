"""The reports page and its JSON export through the test client: roles, teams, figures."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from bot.accounts.models import DEFAULT_TEAM_SLUG, Team
from bot.agents.service import create_agent, start_session
from bot.config import Settings
from bot.conversations.models import Conversation, Message
from bot.db.base import utcnow
from bot.db.session import create_db_engine, create_session_factory
from bot.handoff.models import Ticket
from bot.reports import queries
from bot.web.auth import SESSION_COOKIE

PASSWORD = "correct horse battery"


@pytest.fixture
def db(settings: Settings) -> Iterator[Session]:
    engine = create_db_engine(settings.database_url)
    with create_session_factory(engine)() as session:
        yield session
    engine.dispose()


@pytest.fixture
def seeded(db: Session) -> dict[str, Team]:
    """Two teams; today one answered conversation and one handed-off, rated one (care)."""
    care = Team(slug=DEFAULT_TEAM_SLUG, name="Customer Care")
    business = Team(slug="business-desk", name="Business Desk")
    db.add_all([care, business])
    db.flush()
    now = utcnow()
    db.add_all(
        [Conversation(id="answered", created_at=now), Conversation(id="handed", created_at=now)]
    )
    db.flush()
    db.add_all(
        [
            Message(conversation_id="answered", role="customer", text="Delivery time?"),
            Message(
                conversation_id="answered",
                role="bot",
                text="2-4 days.",
                payload={"citation": {"article_id": "shipping", "title": "Delivery", "score": 0.9}},
            ),
            Message(conversation_id="handed", role="customer", text="<b>Mars</b> shipping?"),
            Message(conversation_id="handed", role="bot", text=queries.KB_NO_ANSWER_REPLIES[0]),
        ]
    )
    db.add(
        Ticket(
            conversation_id="handed",
            status="resolved",
            reason_code="kb_no_answer",
            reason="no answer",
            team_id=care.id,
            created_at=now - dt.timedelta(minutes=30),
            first_agent_reply_at=now - dt.timedelta(minutes=20),
            closed_at=now - dt.timedelta(minutes=5),
            rating=4,
            rated_at=now,
        )
    )
    db.commit()
    return {"care": care, "business": business}


def sign_in(client: TestClient, db: Session, *, role: str, teams: list[str]) -> None:
    agent = create_agent(
        db,
        email=f"{role}@example.com",
        name=role.title(),
        password=PASSWORD,
        role=role,
        team_slugs=teams,
    )
    new = start_session(
        db, agent=agent, lifetime=dt.timedelta(hours=1), second_factor_pending=False
    )
    client.cookies.set(SESSION_COOKIE, new.token)


def test_lead_sees_charts_figures_and_definitions(
    client: TestClient, db: Session, seeded: dict[str, Team]
) -> None:
    sign_in(client, db, role="lead", teams=[DEFAULT_TEAM_SLUG])

    response = client.get("/desk/reports")

    assert response.status_code == 200
    html = response.text
    for canvas in ("chart-per-day", "chart-reasons", "chart-ratings"):
        assert f'<canvas id="{canvas}" role="img"' in html
    for definition in (
        queries.CONVERSATIONS_PER_DAY_DEFINITION,
        queries.SELF_SERVICE_DEFINITION,
        queries.HANDOFF_RATE_DEFINITION,
        queries.FIRST_REPLY_DEFINITION,
        queries.SATISFACTION_DEFINITION,
        queries.UNANSWERED_DEFINITION,
    ):
        assert definition.replace("'", "&#39;") in html
    assert "<h1>Reports</h1>" in html
    assert '<script src="/static/vendor/chart.umd.js" defer></script>' in html
    assert '<script src="/static/reports.js" defer></script>' in html
    assert re.search(r"<script>", html) is None  # no inline script: the CSP forbids it
    assert "http://" not in html and "https://" not in html  # nothing from a CDN
    # Both conversations are Customer Care's: 1 of 2 self-served, 1 of 2 handed off.
    assert html.count('<p class="big-figure">50%</p>') == 2
    assert "10 min" in html  # p50 of the single answered ticket
    assert "4.0" in html  # mean rating
    # Customer text is escaped, and shown in the unanswered questions table.
    assert "&lt;b&gt;Mars&lt;/b&gt; shipping?" in html and "<b>Mars</b>" not in html
    # Chart data for reports.js, and a text alternative for every chart.
    block = re.search(r'id="report-data">(.*?)</script>', html, re.S)
    assert block is not None
    data = json.loads(block[1])
    assert data["perDay"]["values"][-1] == 2
    assert data["ratings"]["values"] == [0, 0, 0, 1, 0]
    assert "1 of 2 conversations were handed to a person" in html
    assert html.count("Show the numbers") == 3
    # A lead chooses among their own teams only.
    assert '<option value="customer-care"' in html
    assert '<option value="business-desk"' not in html


def test_chart_script_and_library_are_served(client: TestClient) -> None:
    script = client.get("/static/reports.js")
    assert script.status_code == 200 and "report-data" in script.text
    assert "innerHTML" not in script.text
    assert client.get("/static/reports.css").status_code == 200
    library = client.get("/static/vendor/chart.umd.js")
    assert library.status_code == 200 and "Chart" in library.text


def test_agent_and_editor_are_refused(
    client: TestClient, db: Session, seeded: dict[str, Team]
) -> None:
    sign_in(client, db, role="agent", teams=[DEFAULT_TEAM_SLUG])

    assert client.get("/desk/reports").status_code == 403
    assert client.get("/desk/reports.json").status_code == 403


def test_anonymous_is_sent_to_sign_in(client: TestClient) -> None:
    for path in ("/desk/reports", "/desk/reports.json"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/desk/login?next=")


def test_json_returns_the_figures(client: TestClient, db: Session, seeded: dict[str, Team]) -> None:
    sign_in(client, db, role="lead", teams=[DEFAULT_TEAM_SLUG])

    response = client.get("/desk/reports.json", params={"days": 7})

    assert response.status_code == 200
    data = response.json()
    assert data["period"]["days"] == 7
    assert len(data["conversations_per_day"]["days"]) == 7
    assert data["conversations_per_day"]["total"] == 2
    assert data["self_service"] == {
        "conversations": 2,
        "resolved": 1,
        "rate": 0.5,
        "definition": queries.SELF_SERVICE_DEFINITION,
    }
    assert data["handoffs"]["by_reason"][0]["reason_code"] == "kb_no_answer"
    assert data["first_reply"]["p50_minutes"] == pytest.approx(10.0)
    assert data["first_reply"]["p90_minutes"] == pytest.approx(10.0)
    assert data["satisfaction"]["mean"] == 4.0 and data["satisfaction"]["share_good"] == 1.0
    assert data["unanswered"]["questions"][0]["example"] == "<b>Mars</b> shipping?"
    assert data["team_ids"] == [seeded["care"].id]


def test_team_filter_and_scope(client: TestClient, db: Session, seeded: dict[str, Team]) -> None:
    sign_in(client, db, role="lead", teams=["business-desk"])

    own = client.get("/desk/reports.json", params={"team": "business-desk"})
    other = client.get("/desk/reports.json", params={"team": DEFAULT_TEAM_SLUG})
    unknown = client.get("/desk/reports", params={"team": "no-such-team"})

    assert own.status_code == 200
    assert own.json()["conversations_per_day"]["total"] == 0  # both are Customer Care's
    assert other.status_code == 404
    assert unknown.status_code == 404


def test_admin_sees_every_team(client: TestClient, db: Session, seeded: dict[str, Team]) -> None:
    sign_in(client, db, role="admin", teams=[])

    everything = client.get("/desk/reports.json").json()
    care = client.get("/desk/reports.json", params={"team": DEFAULT_TEAM_SLUG}).json()
    page = client.get("/desk/reports", params={"days": 90, "team": "business-desk"})

    assert everything["team_ids"] is None and everything["conversations_per_day"]["total"] == 2
    assert care["conversations_per_day"]["total"] == 2
    assert page.status_code == 200
    assert '<option value="90" selected>' in page.text
    assert '<option value="business-desk" selected>' in page.text


@pytest.mark.parametrize("days", ["0", "366", "week"])
def test_days_out_of_range_are_refused(
    client: TestClient, db: Session, seeded: dict[str, Team], days: str
) -> None:
    sign_in(client, db, role="lead", teams=[DEFAULT_TEAM_SLUG])

    assert client.get("/desk/reports.json", params={"days": days}).status_code == 422
