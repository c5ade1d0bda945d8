"""PostgreSQL enforces VARCHAR lengths (SQLite does not): inputs must be checked before.

Every value that reaches a length-limited column from outside (the internal API, the
admin's forms) is refused politely at the limit; nothing becomes a database error.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.orm import Session

from bot.agents.service import AgentError, create_agent
from bot.config import Settings
from bot.conversations.models import Conversation

pytestmark = [pytest.mark.integration, pytest.mark.network, pytest.mark.postgres]

TOKEN = "internal-test-token"
LONGEST_ID = "c" * Conversation.__table__.c.id.type.length


@pytest.fixture
def api(settings: Settings, client: TestClient) -> TestClient:
    client.app.state.settings = settings.model_copy(  # type: ignore[attr-defined]
        update={"service_token": SecretStr(TOKEN)}
    )
    return client


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/internal/v1/handoffs",
            {"reason_code": "customer_request", "reason": "asked", "context": {}},
        ),
        ("/internal/v1/handoffs/withdraw", {}),
        ("/internal/v1/identity-claims", {"email": "nobody@example.com"}),
        ("/internal/v1/feedback", {"helpful": True}),
    ],
)
def test_sender_ids_longer_than_the_column_are_refused_not_a_500(
    api: TestClient, path: str, body: dict[str, object]
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    too_long = api.post(path, json={**body, "conversation_id": LONGEST_ID + "x"}, headers=headers)
    assert too_long.status_code == 422
    longest = api.post(path, json={**body, "conversation_id": LONGEST_ID}, headers=headers)
    assert longest.status_code in (200, 204)


@pytest.mark.parametrize(
    ("email", "name"),
    [("a@" + "b" * 320 + ".example", "Ann"), ("ann@example.com", "A" * 201)],
)
def test_agent_names_and_emails_over_the_limit_are_refused_in_a_sentence(
    session: Session, email: str, name: str
) -> None:
    with pytest.raises(AgentError):
        create_agent(
            session,
            email=email,
            name=name,
            password="correct-horse-battery",
            role="agent",
            team_slugs=[],
        )
    session.rollback()
    agent = create_agent(
        session,
        email="ann@example.com",
        name="A" * 200,
        password="correct-horse-battery",
        role="agent",
        team_slugs=[],
    )
    assert agent.id is not None
