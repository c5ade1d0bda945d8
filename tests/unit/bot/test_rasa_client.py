from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from bot.rasa_client import (
    BotReply,
    RasaClient,
    RasaResponseError,
    RasaUnavailableError,
    parse_replies,
)


async def test_send_message_posts_sender_and_text(rasa: Any) -> None:
    client = rasa.client()
    rasa.replies["hello"] = [{"text": "Hi there!"}]

    replies = await client.send_message(sender_id="abc123", text="hello")
    await client.aclose()

    assert replies == [BotReply(text="Hi there!")]
    request = rasa.requests[0]
    assert request.method == "POST"
    assert request.url.path == "/webhooks/rest/webhook"
    assert json.loads(request.content) == {"sender": "abc123", "message": "hello"}


def test_parse_text_with_buttons() -> None:
    replies = parse_replies(
        [
            {
                "recipient_id": "s",
                "text": "Anything else?",
                "buttons": [
                    {"title": "Yes", "payload": "/affirm"},
                    {"title": "No", "payload": "/deny"},
                    {"payload": "/broken"},
                ],
            }
        ]
    )
    assert len(replies) == 1
    assert [(b.title, b.payload) for b in replies[0].buttons] == [
        ("Yes", "/affirm"),
        ("No", "/deny"),
    ]


def test_custom_citation_is_merged_into_previous_text() -> None:
    replies = parse_replies(
        [
            {"recipient_id": "s", "text": "You can return items within 30 days."},
            {
                "recipient_id": "s",
                "custom": {
                    "citation": {"article_id": "returns-policy", "title": "Returns", "score": 0.81}
                },
            },
        ]
    )
    assert len(replies) == 1
    assert replies[0].text == "You can return items within 30 days."
    assert replies[0].citation is not None
    assert replies[0].citation.article_id == "returns-policy"
    assert replies[0].citation.score == pytest.approx(0.81)
    assert replies[0].custom is None


def test_custom_handoff_is_merged_and_parsed() -> None:
    replies = parse_replies(
        [
            {"text": "I'm connecting you with our team."},
            {"custom": {"handoff": {"id": 7, "team": "Customer Care"}}},
        ]
    )
    assert len(replies) == 1
    assert replies[0].handoff is not None
    assert replies[0].handoff.id == 7
    assert replies[0].handoff.team == "Customer Care"


def test_custom_with_other_keys_is_its_own_reply() -> None:
    replies = parse_replies(
        [
            {"text": "Here is your order."},
            {"custom": {"order": {"number": "ORD-100231"}, "citation": None}},
        ]
    )
    assert len(replies) == 2
    assert replies[1].text is None
    assert replies[1].custom == {"order": {"number": "ORD-100231"}, "citation": None}


def test_custom_only_first_item_stands_alone() -> None:
    replies = parse_replies([{"custom": {"citation": {"article_id": "a", "title": "A"}}}])
    assert len(replies) == 1
    assert replies[0].text is None
    assert replies[0].citation is not None and replies[0].citation.article_id == "a"


def test_second_citation_is_not_merged_over_the_first() -> None:
    replies = parse_replies(
        [
            {"text": "One"},
            {"custom": {"citation": {"article_id": "a", "title": "A"}}},
            {"custom": {"citation": {"article_id": "b", "title": "B"}}},
        ]
    )
    assert [r.citation.article_id for r in replies if r.citation] == ["a", "b"]
    assert len(replies) == 2


def test_malformed_citation_is_ignored() -> None:
    replies = parse_replies([{"text": "Hi"}, {"custom": {"citation": {"title": "no id"}}}])
    assert len(replies) == 1
    assert replies[0].citation is None


def test_image_and_empty_items() -> None:
    replies = parse_replies([{"image": "https://example.com/a.png"}, {"recipient_id": "s"}])
    assert len(replies) == 1
    assert replies[0].custom == {"image": "https://example.com/a.png"}


def test_empty_answer_is_no_replies() -> None:
    assert parse_replies([]) == []


@pytest.mark.parametrize("data", [{"text": "not a list"}, ["text"], None, 3])
def test_non_list_answer_is_a_response_error(data: Any) -> None:
    with pytest.raises(RasaResponseError):
        parse_replies(data, sender_id="s")


async def test_connection_refused_is_unavailable(rasa: Any) -> None:
    rasa.down = True
    client = rasa.client()
    with pytest.raises(RasaUnavailableError) as caught:
        await client.send_message(sender_id="abc", text="hi")
    assert caught.value.sender_id == "abc"
    await client.aclose()


async def test_timeout_is_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("too slow", request=request)

    client = RasaClient(
        base_url="http://rasa.test",
        token=None,
        timeout=0.1,
        transport=httpx.MockTransport(handler),
    )
    with pytest.raises(RasaUnavailableError):
        await client.send_message(sender_id="abc", text="hi")
    await client.aclose()


async def test_server_error_is_unavailable(rasa: Any) -> None:
    rasa.status_code = 502
    client = rasa.client()
    with pytest.raises(RasaUnavailableError) as caught:
        await client.send_message(sender_id="abc", text="hi")
    assert caught.value.status_code == 502
    await client.aclose()


async def test_client_error_is_response_error(rasa: Any) -> None:
    rasa.status_code = 401
    client = rasa.client()
    with pytest.raises(RasaResponseError) as caught:
        await client.status()
    assert caught.value.status_code == 401
    await client.aclose()


async def test_bad_json_is_response_error(rasa: Any) -> None:
    rasa.raw_body = b"<html>oops</html>"
    client = rasa.client()
    with pytest.raises(RasaResponseError):
        await client.send_message(sender_id="abc", text="hi")
    await client.aclose()


async def test_status_and_tracker_send_the_token(rasa: Any) -> None:
    client = rasa.client(token="t0ken")
    status = await client.status()
    tracker = await client.tracker(sender_id="abc123")
    await client.aclose()

    assert status == {"model_file": "models/test.tar.gz"}
    assert tracker == {"sender_id": "abc123"}
    assert [r.url.path for r in rasa.requests] == ["/status", "/conversations/abc123/tracker"]
    assert all(r.url.params["token"] == "t0ken" for r in rasa.requests)


async def test_webhook_does_not_leak_the_token(rasa: Any) -> None:
    client = rasa.client(token="t0ken")
    await client.send_message(sender_id="abc", text="hi")
    await client.aclose()
    assert "token" not in rasa.requests[0].url.params
