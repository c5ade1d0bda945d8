"""The internal API the action server calls: token guard, contract, idempotency."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from actions.clients.bot_api import BotServiceClient, BotServiceError
from bot.accounts.demo import DEMO_BUSINESS_ORDER, seed_demo_database
from bot.config import Settings
from bot.web.app import create_app

TOKEN = "internal-test-token"


@pytest.fixture
def app_settings(settings: Settings) -> Settings:
    seed_demo_database(settings.database_url)
    return settings.model_copy(update={"service_token": SecretStr(TOKEN)})


@pytest.fixture
def api(app_settings: Settings, client: TestClient) -> TestClient:
    client.app.state.settings = app_settings  # type: ignore[attr-defined]
    return client


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Bearer ", TOKEN])
def test_requests_without_the_service_token_are_refused(
    api: TestClient, header: str | None
) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = api.post(
        "/internal/v1/feedback",
        json={"conversation_id": "c1", "helpful": True},
        headers=headers,
    )
    assert response.status_code == 401


def test_no_configured_token_refuses_everything(client: TestClient) -> None:
    response = client.post(
        "/internal/v1/handoffs/withdraw",
        json={"conversation_id": "c1"},
        headers={"Authorization": "Bearer anything"},
    )
    assert response.status_code == 401


def test_hostile_bodies_get_422_not_500(api: TestClient) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for body in ({}, {"conversation_id": "x" * 1000, "helpful": True}, ["not", "an", "object"]):
        response = api.post("/internal/v1/feedback", json=body, headers=headers)
        assert response.status_code == 422


async def test_the_actions_client_speaks_the_same_contract(app_settings: Settings) -> None:
    app = create_app(app_settings)
    async with app.router.lifespan_context(app):
        client = BotServiceClient(
            base_url="http://bot.test/internal/v1",
            token=TOKEN,
            transport=httpx.ASGITransport(app=app),
        )
        noted = await client.note_identity_claim(
            conversation_id="c-contract",
            email=None,
            account_number=None,
            order_number=DEMO_BUSINESS_ORDER,
        )
        first = await client.open_handoff(
            conversation_id="c-contract",
            reason_code="customer_request",
            reason="customer asked for a human",
            context={"turns": []},
            channel="webchat",
        )
        second = await client.open_handoff(
            conversation_id="c-contract",
            reason_code="customer_request",
            reason="customer asked for a human",
            context={},
            channel="webchat",
        )
        withdrawn = await client.withdraw_handoff(conversation_id="c-contract")
        nothing = await client.withdraw_handoff(conversation_id="c-contract")
        await client.record_feedback(
            conversation_id="c-contract", article_id="a", outcome="answered", helpful=False
        )
        wrong = BotServiceClient(
            base_url="http://bot.test/internal/v1",
            token="nope",
            transport=httpx.ASGITransport(app=app),
        )
        with pytest.raises(BotServiceError) as refused:
            await wrong.withdraw_handoff(conversation_id="c-contract")
        await client.aclose()
        await wrong.aclose()

    assert noted.matched is True
    assert first.team_name == "Key Accounts DACH" and first.already_open is False
    assert second.ticket_id == first.ticket_id and second.already_open is True
    assert withdrawn.withdrawn is True and withdrawn.ticket_id == first.ticket_id
    assert nothing.withdrawn is False
    assert refused.value.status_code == 401
