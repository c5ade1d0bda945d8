"""The real rasa-sdk action server, started as a subprocess, answering Rasa-shaped requests.

The server gets its own var folder (``CONCIERGE_VAR_DIR``) with a knowledge index
published there with the real all-MiniLM-L6-v2 encoder over four of the project's
articles, and the real bot service (``python -m bot web``) on a migrated database with
the demo customers: actions reach app state only through its internal API.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bot.ops.stack import free_port
from tests.helpers.trackers import entity, session_start, slot, tracker_state, user

pytestmark = pytest.mark.integration

PROJECT_ROOT = Path(__file__).resolve().parents[3]
ARTICLE_IDS = (
    "returns-start-a-return",
    "refunds-timing",
    "delivery-costs",
    "business-join-program",
)
STARTUP_TIMEOUT = 60.0
REQUEST_TIMEOUT = 120.0  # the first knowledge request loads the embedding model


@dataclass(frozen=True)
class ActionServer:
    url: str
    log_path: Path
    database_url: str


def _prepare_var_dir(var_dir: Path) -> str:
    """Migrate a database with the demo customers and publish a small real index."""
    from bot.accounts.demo import seed_demo_database
    from bot.db.session import upgrade_database
    from knowledge.articles import load_articles
    from knowledge.encoder import SentenceTransformerEncoder
    from knowledge.index import KnowledgeIndex
    from knowledge.store import publish

    database_url = f"sqlite:///{var_dir / 'concierge.db'}"
    upgrade_database(database_url)
    seed_demo_database(database_url)

    articles = [
        a for a in load_articles(PROJECT_ROOT / "knowledge" / "articles") if a.id in ARTICLE_IDS
    ]
    assert sorted(a.id for a in articles) == sorted(ARTICLE_IDS)
    publish(KnowledgeIndex.build(articles, SentenceTransformerEncoder()), var_dir / "index")
    return database_url


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _start(
    argv: list[str], env: dict[str, str], health_url: str, log_path: Path
) -> subprocess.Popen[bytes]:
    """Start a service and wait until its health URL answers ``{"status": "ok"}``."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if process.poll() is not None:
            pytest.fail(f"{argv} exited with {process.returncode}:\n{_log_tail(log_path)}")
        try:
            if httpx.get(health_url, timeout=2.0).json().get("status") == "ok":
                return process
        except (httpx.HTTPError, ValueError):
            pass
        if time.monotonic() > deadline:
            _stop(process)
            pytest.fail(f"{argv} not healthy after {STARTUP_TIMEOUT}s:\n{_log_tail(log_path)}")
        time.sleep(0.25)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@pytest.fixture(scope="module")
def action_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ActionServer]:
    """Start the bot service and ``python -m rasa_sdk --actions actions`` on 127.0.0.1."""
    var_dir = tmp_path_factory.mktemp("action-server-var")
    database_url = _prepare_var_dir(var_dir)
    port, web_port = free_port(), free_port()
    env = {
        **os.environ,
        "CONCIERGE_VAR_DIR": str(var_dir),
        "CONCIERGE_DATABASE_URL": database_url,
        "CONCIERGE_WEB_PORT": str(web_port),
        "CONCIERGE_SERVICE_TOKEN": "integration-service-token",
        "SANIC_HOST": "127.0.0.1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("CONCIERGE_INDEX_DIR", None)
    web = _start(
        [sys.executable, "-m", "bot", "web"],
        env,
        f"http://127.0.0.1:{web_port}/health",
        var_dir / "web.log",
    )
    try:
        log_path = var_dir / "actions.log"
        actions = _start(
            [sys.executable, "-m", "actions", "--actions", "actions", "--port", str(port)],
            env,
            f"http://127.0.0.1:{port}/health",
            log_path,
        )
        try:
            yield ActionServer(
                url=f"http://127.0.0.1:{port}", log_path=log_path, database_url=database_url
            )
        finally:
            _stop(actions)
    finally:
        _stop(web)


@pytest.fixture(scope="module")
def domain() -> dict[str, Any]:
    return yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))


def rasa_request(
    next_action: str, events: list[dict[str, Any]], domain: dict[str, Any], sender_id: str
) -> dict[str, Any]:
    """Return the body Rasa 3.6 posts to ``/webhook``."""
    slots = {name: None for name in domain["slots"]}
    slots.update({"kb_attempts": 0.0, "handoff_requested": False})
    latest_message: dict[str, Any] = {}
    for event in events:
        if event["event"] == "slot":
            slots[event["name"]] = event["value"]
        elif event["event"] == "user":
            latest_message = dict(event["parse_data"])
    return {
        "next_action": next_action,
        "sender_id": sender_id,
        "tracker": tracker_state(events, slots, latest_message, sender_id),
        "domain": domain,
        "version": "3.6.21",
    }


def post(server: ActionServer, body: dict[str, Any]) -> httpx.Response:
    try:
        return httpx.post(f"{server.url}/webhook", json=body, timeout=REQUEST_TIMEOUT)
    except httpx.HTTPError as error:
        pytest.fail(f"request failed: {error}\n{_log_tail(server.log_path)}")


def test_health(action_server: ActionServer) -> None:
    assert httpx.get(f"{action_server.url}/health", timeout=5).json() == {"status": "ok"}


def test_knowledge_answer_over_the_real_model(
    action_server: ActionServer, domain: dict[str, Any]
) -> None:
    question = "How can I send back something I bought?"
    events = [*session_start(), user(question, "ask_question", 0.97)]

    response = post(
        action_server, rasa_request("action_answer_from_knowledge", events, domain, "it-kb")
    )

    assert response.status_code == 200, response.text
    body = response.json()
    [answer] = body["responses"]
    citation = answer["custom"]["citation"]
    assert citation["article_id"] == "returns-start-a-return"
    assert citation["title"] == "How do I return an item?"
    assert citation["score"] >= 0.55
    assert answer["text"].startswith("Start a return from My orders within 30 days")  # plain text
    assert [b["payload"] for b in answer["buttons"]] == ["/feedback_helpful", "/feedback_unhelpful"]
    assert [(e["event"], e["name"], e["value"]) for e in body["events"]] == [
        ("slot", "kb_last_query", question),
        ("slot", "kb_last_article_id", "returns-start-a-return"),
        ("slot", "kb_last_outcome", "answered"),
        ("slot", "kb_attempts", 1.0),
        ("slot", "kb_unknown_streak", 0.0),
    ]


def test_unrelated_question_is_not_guessed(
    action_server: ActionServer, domain: dict[str, Any]
) -> None:
    events = [
        *session_start(),
        user("What is the airspeed velocity of an unladen swallow?", "nlu_fallback", 0.3),
    ]

    response = post(
        action_server, rasa_request("action_answer_from_knowledge", events, domain, "it-unknown")
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["response"] for r in body["responses"]] == ["utter_kb_unknown"]
    assert body["events"][2] == {
        "event": "slot",
        "timestamp": None,
        "name": "kb_last_outcome",
        "value": "unknown",
    }


def test_identify_then_hand_off_to_the_business_team(
    action_server: ActionServer, domain: dict[str, Any]
) -> None:
    sender = "it-business"
    events = [
        *session_start(),
        user(
            "I'm ingrid.halvorsen@fjord-architects.example",
            "give_identity",
            0.93,
            [entity("email", "ingrid.halvorsen@fjord-architects.example", start=4)],
        ),
    ]

    identified = post(
        action_server, rasa_request("action_identify_customer", events, domain, sender)
    )

    assert identified.status_code == 200, identified.text
    body = identified.json()
    [reply] = body["responses"]
    # Nothing about the account is revealed before the contact is verified.
    assert reply["response"] == "utter_identity_noted"
    assert "Ingrid" not in identified.text and "Fjord" not in identified.text
    assert [(e["name"], e["value"]) for e in body["events"]] == [("identity_claimed", True)]

    events += [slot(e["name"], e["value"]) for e in body["events"]]
    events.append(user("can I talk to a person please", "request_human", 0.98))
    handed_off = post(
        action_server, rasa_request("action_handoff_to_human", events, domain, sender)
    )

    assert handed_off.status_code == 200, handed_off.text
    body = handed_off.json()
    [reply] = body["responses"]
    assert reply["response"] == "utter_handoff_queued"
    assert reply["team_name"] == "Key Accounts DACH"
    handoff_id = reply["custom"]["handoff"]["id"]
    assert reply["custom"] == {"handoff": {"id": handoff_id, "team": "Key Accounts DACH"}}
    assert [(e["name"], e["value"]) for e in body["events"]] == [
        ("handoff_id", str(handoff_id)),
        ("handoff_requested", True),
        ("kb_unknown_streak", 0.0),
    ]

    again = post(
        action_server, rasa_request("action_handoff_to_human", events, domain, sender)
    ).json()
    assert again["responses"][0]["response"] == "utter_handoff_already_queued"
    assert again["responses"][0]["custom"]["handoff"]["id"] == handoff_id

    from sqlalchemy import create_engine, text

    engine = create_engine(action_server.database_url)
    try:
        with engine.connect() as connection:
            reason, status, verified = connection.execute(
                text(
                    "SELECT reason, status, identity_verified FROM tickets "
                    "WHERE conversation_id = :c"
                ),
                {"c": sender},
            ).one()
    finally:
        engine.dispose()
    assert (reason, status, verified) == ("customer asked for a human", "queued", 0)


def test_unknown_action_is_a_404(action_server: ActionServer, domain: dict[str, Any]) -> None:
    events = [*session_start(), user("hi", "greet")]

    response = post(action_server, rasa_request("action_does_not_exist", events, domain, "it-404"))

    assert response.status_code == 404
    assert response.json()["action_name"] == "action_does_not_exist"
