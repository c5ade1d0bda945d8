"""Two editors, two real bot-service replicas, one database: publishing at the same moment.

Each replica is ``python -m bot web`` on its own port, sharing the SQLite file and the
index root, with the real torch MiniLM as document encoder (loaded in each process, as in
production). Editor A saves an article through replica A and editor B another through
replica B; both click Publish at the same moment. One replica builds; the other answers
409 "try again in a few seconds". After that retry, both changes are live: the one index
holds both articles, and each replica's preview sees the new build. Then a lead starts a
tune on replica A: the real ``kb tune --job`` process tunes the real MiniLM, replica B
refuses a second tune and follows the first one's steps, and the tuned build goes live.
"""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bot.agents.service import create_agent
from bot.config import get_settings
from bot.db.session import create_db_engine, create_session_factory, upgrade_database
from bot.editor import service
from bot.editor.service import Actor
from bot.ops.stack import free_port
from knowledge.articles import load_articles
from knowledge.store import current_manifest
from tests.helpers.web_process import WebProcess, start_web

pytestmark = [pytest.mark.integration, pytest.mark.network]

PASSWORD = "two editors, one knowledge base"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')
MODEL_READY_SECONDS = 180
SEED = Path(__file__).resolve().parents[3] / "knowledge" / "articles"


@dataclass(frozen=True)
class Stack:
    urls: tuple[str, str]
    database_url: str
    index_dir: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    var_dir = tmp_path_factory.mktemp("editor-replicas")
    database_url = f"sqlite:///{var_dir / 'concierge.db'}"
    upgrade_database(database_url)
    engine = create_db_engine(database_url)
    try:
        with create_session_factory(engine)() as session:
            service.import_articles(session, SEED, actor=Actor.command_line("test"))
            for name, role in (("ada", "editor"), ("bob", "editor"), ("lena", "lead")):
                create_agent(
                    session,
                    email=f"{name}@editors.example",
                    name=name.title(),
                    password=PASSWORD,
                    role=role,
                    actor="test",
                )
    finally:
        engine.dispose()
    env = {
        "CONCIERGE_VAR_DIR": str(var_dir),
        "CONCIERGE_DATABASE_URL": database_url,
        "CONCIERGE_SERVICE_TOKEN": "editor-replicas-token",
        "CONCIERGE_MODELS_DIR": str(get_settings().models_dir),
        "CONCIERGE_RASA_PORT": str(free_port()),
    }
    started: list[WebProcess] = []
    try:
        for number in range(2):
            started.append(start_web(port=free_port(), env=env, log=var_dir / f"web-{number}.log"))
        yield Stack((started[0].url, started[1].url), database_url, var_dir / "index")
    finally:
        for web in started:
            web.stop()


async def _signed_in(client: httpx.AsyncClient, email: str) -> str:
    page = await client.get("/desk/login")
    token = CSRF_INPUT.search(page.text)
    assert token, page.text
    done = await client.post(
        "/desk/login",
        data={"email": email, "password": PASSWORD, "csrf_token": token.group(1), "next": ""},
    )
    assert done.status_code == 303, done.text
    listing = await client.get("/editor/articles")  # also starts loading the model
    meta = CSRF_META.search(listing.text)
    assert meta, listing.text
    return meta.group(1)


async def _wait_until_ready(client: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + MODEL_READY_SECONDS
    while not (await client.get("/editor/api/publisher")).json()["ready"]:
        assert time.monotonic() < deadline, "the replica never loaded its document encoder"
        await asyncio.sleep(0.5)


def _field(page: str, pattern: str) -> str:
    match = re.search(pattern, page)
    assert match, pattern
    return html.unescape(match.group(1))


async def _save(client: httpx.AsyncClient, token: str, article_id: str, sentence: str) -> None:
    edit = (await client.get(f"/editor/articles/{article_id}/edit")).text
    saved = await client.post(
        f"/editor/articles/{article_id}",
        json={
            "id": article_id,
            "title": _field(edit, r'id="f-title" name="title" value="([^"]*)"'),
            "audience": _field(edit, r'<option value="(\w+)" selected'),
            "owner": _field(edit, r'id="f-owner" name="owner" value="([^"]*)"'),
            "questions": _field(edit, r'name="questions"[^>]*>([^<]*)</textarea>'),
            "tags": _field(edit, r'id="f-tags" name="tags" value="([^"]*)"'),
            "body": f"{sentence} " + _field(edit, r'name="body"[^>]*>([^<]*)</textarea>'),
        },
        headers={"Accept": "application/json", "X-CSRF-Token": token},
    )
    assert saved.status_code == 200, saved.text


async def _click(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(
        "/editor/publish", headers={"Accept": "application/json", "X-CSRF-Token": token}
    )


async def test_two_editors_publish_at_once_on_two_replicas(stack: Stack) -> None:
    timeout = httpx.Timeout(180.0)
    async with (
        httpx.AsyncClient(base_url=stack.urls[0], timeout=timeout) as ada,
        httpx.AsyncClient(base_url=stack.urls[1], timeout=timeout) as bob,
    ):
        ada_token, bob_token = await asyncio.gather(
            _signed_in(ada, "ada@editors.example"), _signed_in(bob, "bob@editors.example")
        )
        await asyncio.gather(_wait_until_ready(ada), _wait_until_ready(bob))
        await _save(ada, ada_token, "delivery-international", "Ada: we ship to Iceland.")
        await _save(bob, bob_token, "refunds-timing", "Bob: refunds take 3 days now.")

        # Nothing was built yet: the first publish encodes every article (seconds), so the
        # two clicks overlap whatever the scheduling.
        first, second = await asyncio.gather(_click(ada, ada_token), _click(bob, bob_token))
        assert sorted([first.status_code, second.status_code]) == [200, 409], (
            first.text,
            second.text,
        )
        refused, winner = (first, second) if first.status_code == 409 else (second, first)
        assert "try again in a few seconds" in refused.json()["error"]
        changed = {change["article_id"] for change in winner.json()["changes"]}
        assert {"delivery-international", "refunds-timing"} <= changed

        retry_client, retry_token = (ada, ada_token) if refused is first else (bob, bob_token)
        retry = await _click(retry_client, retry_token)
        assert retry.status_code == 200, retry.text
        assert retry.json()["skipped"] is True  # both editors' changes were already live

        manifest = current_manifest(stack.index_dir)
        assert manifest is not None and manifest.article_count == len(load_articles(SEED))
        for client, token in ((ada, ada_token), (bob, bob_token)):
            preview = await client.post(
                "/editor/api/preview",
                json={
                    "id": "gifts-wrap",
                    "title": "Can you gift wrap my order?",
                    "audience": "all",
                    "owner": "team",
                    "body": "Yes, for 3.50 EUR.",
                    "test_question": ["How long do refunds take?"],
                },
                headers={"Accept": "application/json", "X-CSRF-Token": token},
            )
            assert preview.status_code == 200 and preview.json()["ok"], preview.text
            assert "When will I get my refund?" in preview.json()["answers_html"]


async def test_a_lead_tunes_on_one_replica_and_the_other_follows_it(stack: Stack) -> None:
    timeout = httpx.Timeout(180.0)
    json_headers = {"Accept": "application/json"}
    async with (
        httpx.AsyncClient(base_url=stack.urls[0], timeout=timeout) as here,
        httpx.AsyncClient(base_url=stack.urls[1], timeout=timeout) as there,
    ):
        here_token, there_token = await asyncio.gather(
            _signed_in(here, "lena@editors.example"), _signed_in(there, "lena@editors.example")
        )
        if current_manifest(stack.index_dir) is None:  # run alone: publish the seed first
            await _wait_until_ready(here)
            assert (await _click(here, here_token)).status_code == 200
        settings = {"max_minutes": "5", "epochs": "1"}
        started = await here.post(
            "/editor/tune", json=settings, headers={**json_headers, "X-CSRF-Token": here_token}
        )
        assert started.status_code == 200, started.text
        job_id = started.json()["job"]["id"]
        refused = await there.post(
            "/editor/tune", json=settings, headers={**json_headers, "X-CSRF-Token": there_token}
        )
        assert refused.status_code == 409 and "already running" in refused.json()["error"]

        seen: list[int] = []
        deadline = time.monotonic() + 300
        while True:
            job = (await there.get("/editor/tune", headers=json_headers)).json()["job"]
            assert job["id"] == job_id
            seen.append(job["steps_done"])
            if not job["active"]:
                break
            assert time.monotonic() < deadline, job
            await asyncio.sleep(0.5)
        assert job["status"] == "succeeded", job
        assert job["steps_done"] == job["steps_planned"] > 0 and seen == sorted(seen)
        manifest = current_manifest(stack.index_dir)
        assert manifest is not None and manifest.model == job["encoder"]
        assert "+tuned-" in manifest.model and manifest.encoder_dir
        box = (await here.get("/editor/tune")).text
        assert "It learned from the title and questions of every live article." in box
