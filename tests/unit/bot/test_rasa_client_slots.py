"""The Rasa client sends at most ``max_in_flight`` requests at once; waiting counts as time."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from bot.rasa_client import RasaClient, RasaUnavailableError


class SlowRasa:
    """Answers after a pause and records how many requests it held at once."""

    def __init__(self, pause: float) -> None:
        self.pause = pause
        self.in_flight = 0
        self.most = 0

    async def handler(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        await asyncio.sleep(self.pause)
        self.in_flight -= 1
        return httpx.Response(200, json=[{"recipient_id": "c", "text": "hi"}])


def _client(rasa: SlowRasa, *, timeout: float, max_in_flight: int) -> RasaClient:
    return RasaClient(
        base_url="http://rasa.test",
        token=None,
        timeout=timeout,
        transport=httpx.MockTransport(rasa.handler),
        max_in_flight=max_in_flight,
    )


async def test_requests_beyond_the_limit_wait_their_turn() -> None:
    rasa = SlowRasa(pause=0.02)
    client = _client(rasa, timeout=5, max_in_flight=3)
    try:
        replies = await asyncio.gather(
            *(client.send_message(sender_id=f"c{n}", text="hi") for n in range(20))
        )
    finally:
        await client.aclose()
    assert all(reply[0].text == "hi" for reply in replies)
    assert rasa.most == 3


async def test_waiting_for_a_slot_counts_towards_the_timeout() -> None:
    rasa = SlowRasa(pause=0.3)
    client = _client(rasa, timeout=0.4, max_in_flight=1)
    try:
        first = asyncio.create_task(client.send_message(sender_id="a", text="hi"))
        await asyncio.sleep(0.01)
        with pytest.raises(RasaUnavailableError):
            # Waits 0.3 s for the slot, then 0.3 s for Rasa: over the 0.4 s budget.
            await client.send_message(sender_id="b", text="hi")
        await first
    finally:
        await client.aclose()
