"""The knowledge editor through the FastAPI app: sign-in, roles, CSRF, forged ids, huge input,
the content-gaps links, the preview, autosave with an expired session, and publishing
(concurrent requests included) into a real index root with the fake encoder."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

from bot.agents.models import AgentSession
from bot.audit.models import AuditEvent
from bot.config import Settings
from bot.editor.models import KbPublication, KbWorkingCopy
from bot.web.routes.editor import SIGNED_OUT
from knowledge.store import load_current
from tests.helpers.desk import DeskUser, form_csrf, make_user, sign_in
from tests.helpers.fake_encoder import FakeEncoder

pytestmark = pytest.mark.integration

ENCODER = FakeEncoder()
JSON = {"Accept": "application/json"}


class SlowEncoder:
    """The fake encoder, taking a while per batch (so two publishes overlap)."""

    def __init__(self, seconds: float) -> None:
        self.name = ENCODER.name
        self.dimension = ENCODER.dimension
        self.seconds = seconds

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        time.sleep(self.seconds)
        return ENCODER.encode(texts)


def article(article_id: str = "returns-label-lost", **overrides: Any) -> dict[str, Any]:
    fields = {
        "id": article_id,
        "title": "I lost my return label",
        "audience": "all",
        "owner": "returns-team",
        "questions": "Where is my return label?\nreturn label missing",
        "tags": "returns",
        "language": "en",
        "body": "Download a new label from My orders.\n\n<script>alert(1)</script>",
    }
    fields.update(overrides)
    return fields


@pytest.fixture
def users(client: TestClient) -> dict[str, DeskUser]:
    factory = client.app.state.session_factory  # type: ignore[attr-defined]
    client.app.state.editor_encoder = ENCODER  # type: ignore[attr-defined]
    return {
        role: make_user(factory, email=f"{role}@example.com", role=role, teams=())
        for role in ("agent", "editor", "lead", "admin")
    }


def table(html: str) -> str:
    """The article table of the list page (the pending list names every article)."""
    return html.split('<div id="article-table">', 1)[1]


def csrf_of(client: TestClient, path: str = "/editor/articles") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    return form_csrf(page.text)


def post_json(client: TestClient, path: str, token: str, body: dict[str, Any] | None = None) -> Any:
    return client.post(path, json=body or {}, headers={**JSON, "X-CSRF-Token": token})


def test_sign_in_roles_and_csrf(client: TestClient, users: dict[str, DeskUser]) -> None:
    anonymous = client.get("/editor/articles/new?title=x", follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/desk/login?next=")
    assert client.get("/editor/api/publisher").status_code == 401
    api = client.post("/editor/api/preview", json={}, headers=JSON)
    assert api.status_code == 401 and api.json()["detail"] == SIGNED_OUT

    sign_in(client, users["agent"])
    assert client.get("/editor/articles").status_code == 403
    assert client.post("/editor/publish", headers=JSON).status_code == 403
    client.post("/desk/logout", data={"csrf_token": csrf_of(client, "/desk")})

    sign_in(client, users["editor"])
    page = client.get("/editor/articles")
    assert page.status_code == 200 and 'href="/editor/articles"' in page.text  # desk nav
    assert client.get("/desk/articles", follow_redirects=False).headers["location"] == (
        "/editor/articles"
    )
    token = form_csrf(page.text)
    no_token = client.post("/editor/articles", json=article(), headers=JSON)
    assert no_token.status_code == 403
    foreign = client.post(
        "/editor/articles",
        json=article(),
        headers={**JSON, "X-CSRF-Token": token, "Origin": "https://evil.example"},
    )
    assert foreign.status_code == 403
    assert client.get("/editor/api/publisher").json() == {"ready": True}  # injected encoder
    created = post_json(client, "/editor/articles", token, article())
    assert created.status_code == 200, created.text
    assert created.json()["revision"] == 1


def test_form_posts_without_javascript_and_list_search(
    client: TestClient, users: dict[str, DeskUser]
) -> None:
    sign_in(client, users["editor"])
    token = csrf_of(client)
    response = client.post(
        "/editor/articles", data={**article(), "csrf_token": token}, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/editor/articles/returns-label-lost/edit?saved=1"
    parcel = article("orders-track", title="Where is my parcel?", body="Track it in My orders.")
    post_json(client, "/editor/articles", token, parcel)
    found = table(client.get("/editor/articles", params={"q": "parcel"}).text)
    assert "orders-track" in found and "returns-label-lost" not in found
    by_text = table(client.get("/editor/articles", params={"q": "download label"}).text)
    assert "returns-label-lost" in by_text and "orders-track" not in by_text
    none = client.get("/editor/articles", params={"audience": "b2b"}).text
    assert "No article matches" in none
    edit = client.get("/editor/articles/returns-label-lost/edit")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in edit.text  # the body, escaped in a textarea
    assert "<script>alert(1)</script>" not in edit.text


def test_an_out_of_scope_article_is_marked_and_has_no_public_page(
    client: TestClient, users: dict[str, DeskUser]
) -> None:
    sign_in(client, users["editor"])
    token = csrf_of(client)
    declines = article(
        "not-ours",
        title="Questions we do not answer",
        questions="tell me a joke",
        tags="out-of-scope",
    )
    post_json(client, "/editor/articles", token, declines)
    post_json(client, "/editor/articles", token, article())
    assert post_json(client, "/editor/publish", token).status_code == 200

    rows = table(client.get("/editor/articles").text).split("<tr data-article-id=")
    listed = next(row for row in rows if row.startswith('"not-ours"'))
    other = next(row for row in rows if row.startswith('"returns-label-lost"'))
    assert ">out of scope</span>" in listed and ">out of scope</span>" not in other
    assert (
        "makes this a list of questions the bot declines"
        in client.get("/editor/articles/not-ours/edit").text
    )
    assert client.get("/articles/not-ours").status_code == 404  # published, yet no page
    started = client.get(
        "/editor/articles/new",
        params={"title": "Not ours", "question": "tell me a joke", "tag": ["out-of-scope", " x "]},
    )
    assert 'name="tags" value="out-of-scope, x"' in started.text
    assert client.get("/articles/returns-label-lost").status_code == 200


def test_forged_ids_and_bad_input(client: TestClient, users: dict[str, DeskUser]) -> None:
    sign_in(client, users["editor"])
    token = csrf_of(client)
    post_json(client, "/editor/articles", token, article())
    for path in (
        "/editor/articles/nope/edit",
        "/editor/articles/..%2F..%2Fetc/edit",
        "/editor/articles/returns-label-lost/history?a=1&b=99",
    ):
        assert client.get(path).status_code == 404, path
    for path in (
        "/editor/articles/returns-label-lost/revisions/99/rollback",
        "/editor/articles/returns-label-lost/revisions/abc/submit",
        "/editor/articles/other-article/retire",
        "/editor/articles/returns-label-lost/revisions/-1/review",
    ):
        assert post_json(client, path, token).status_code == 404, path

    huge = post_json(client, "/editor/articles", token, article("big", body="x" * 5_000_000))
    assert huge.status_code == 413 and "far too long" in huge.json()["detail"]
    long_title = post_json(client, "/editor/articles", token, article("t", title="t" * 10_000))
    assert long_title.status_code == 422
    assert long_title.json()["problems"][0]["field"] == "title"
    empty = post_json(client, "/editor/articles", token, article("empty", body="   "))
    assert empty.status_code == 422
    assert any(p["field"] == "body" for p in empty.json()["problems"])
    duplicate = post_json(client, "/editor/articles", token, article())
    assert duplicate.status_code == 409 and "already exists" in duplicate.json()["error"]
    changed_id = post_json(
        client, "/editor/articles/returns-label-lost", token, article("another-id")
    )
    assert changed_id.status_code == 422

    bad_bytes = client.post(
        "/editor/api/import-file",
        files={"file": ("legacy.md", b"---\nid: legacy\ntitle: caf\xe9\n---\nbody\n")},
        headers={**JSON, "X-CSRF-Token": token},
    )
    assert bad_bytes.status_code == 422 and "UTF-8" in bad_bytes.json()["error"]
    good = (
        "---\nid: legacy\ntitle: Legacy\naudience: all\ntags: []\nquestions: [old one]\n"
        "language: en\nupdated: 2026-01-01\nowner: team\n---\nThe answer.\n"
    )
    imported = client.post(
        "/editor/api/import-file",
        files={"file": ("legacy.md", good.encode())},
        headers={**JSON, "X-CSRF-Token": token},
    )
    assert imported.status_code == 200 and imported.json()["fields"]["questions"] == "old one"
    # Nothing of the refused input was stored.
    history = client.get("/editor/articles/returns-label-lost/history").text
    assert history.count('data-revision="') == 1


def test_content_gaps_links_prefill_the_forms(
    client: TestClient, users: dict[str, DeskUser]
) -> None:
    sign_in(client, users["editor"])
    token = csrf_of(client)
    post_json(client, "/editor/articles", token, article())
    new = client.get(
        "/editor/articles/new",
        params=[
            ("title", "Can I return a gift?"),
            ("question", "gift return"),
            ("question", "<b>x"),
        ],
    )
    assert new.status_code == 200
    assert 'value="Can I return a gift?"' in new.text
    assert "gift return\n&lt;b&gt;x</textarea>" in new.text
    edit = client.get(
        "/editor/articles/returns-label-lost/edit",
        params=[("add_question", "label gone"), ("add_question", "return label missing")],
    )
    questions = re.search(r'name="questions"[^>]*>([^<]*)</textarea>', edit.text)
    assert questions is not None
    assert questions.group(1).split("\n") == [
        "Where is my return label?",
        "return label missing",
        "label gone",
    ]
    assert "Added 1 alternate question" in edit.text


def test_preview_answers_with_the_draft_and_escapes_html(
    client: TestClient, users: dict[str, DeskUser], settings: Settings
) -> None:
    sign_in(client, users["editor"])
    token = csrf_of(client)
    post_json(client, "/editor/articles", token, article())
    post_json(
        client,
        "/editor/articles",
        token,
        article("orders-track", title="Where is my parcel?", questions="track my order"),
    )
    assert post_json(client, "/editor/publish", token).status_code == 200
    public = client.get("/articles/orders-track")  # the chat's citation link: the live text
    assert public.status_code == 200 and "Where is my parcel?" in public.text
    assert client.get("/articles/broken-article").status_code == 404  # only in the folder
    draft = article(
        title="I lost my return label",
        questions="Can I get a gift receipt?",
        body="Ask us for a gift receipt. <img src=x onerror=alert(1)>",
    )
    preview = post_json(
        client,
        "/editor/api/preview",
        token,
        {**draft, "test_question": ["Can I get a gift receipt?", "Where is my parcel?"]},
    )
    assert preview.status_code == 200 and preview.json()["ok"], preview.text
    answers = preview.json()["answers_html"]
    first, second = answers.split('<li class="preview-answer')[1:3]
    assert "(this draft)" in first
    assert "Where is my parcel?" in second and "(this draft)" not in second
    page = preview.json()["page_html"]
    assert "<img" not in page and "&lt;img" in page
    invalid = post_json(client, "/editor/api/preview", token, {**draft, "body": ""})
    assert invalid.json()["ok"] is False


def test_autosave_and_an_expired_session_keep_the_draft(
    client: TestClient, users: dict[str, DeskUser]
) -> None:
    sign_in(client, users["editor"])
    token = csrf_of(client)
    post_json(client, "/editor/articles", token, article())
    typing = article(body="Half-written new text")
    kept = post_json(
        client,
        "/editor/api/working-copy",
        token,
        {**typing, "key": "returns-label-lost", "base_number": "1"},
    )
    assert kept.status_code == 200
    factory = client.app.state.session_factory  # type: ignore[attr-defined]
    with factory() as session:  # the session expires (deleted) while the editor types
        session.execute(delete(AgentSession))
        session.commit()
    save = post_json(client, "/editor/articles/returns-label-lost", token, typing)
    assert save.status_code == 401 and save.json()["detail"] == SIGNED_OUT
    sign_in(client, users["editor"])
    edit = client.get("/editor/articles/returns-label-lost/edit").text
    assert "Half-written new text" in edit  # the server's working copy, for the page to restore
    with factory() as session:
        assert session.scalars(select(KbWorkingCopy)).first() is not None
    saved = post_json(client, "/editor/articles/returns-label-lost", csrf_of(client), typing)
    assert saved.status_code == 200 and saved.json()["revision"] == 2
    with factory() as session:
        assert session.scalars(select(KbWorkingCopy)).first() is None


def test_review_flow_when_required(
    client: TestClient, users: dict[str, DeskUser], settings: Settings
) -> None:
    settings.kb_require_review = True
    sign_in(client, users["lead"])
    lead_token = csrf_of(client)
    post_json(client, "/editor/articles", lead_token, article())
    own = post_json(
        client,
        "/editor/articles/returns-label-lost/revisions/1/review",
        lead_token,
        {"approve": "1"},
    )
    assert own.status_code == 403 and "another lead" in own.json()["error"]
    refused = post_json(client, "/editor/publish", lead_token)
    assert refused.status_code == 500 and "Nothing would be live" in refused.json()["error"]
    client.post("/desk/logout", data={"csrf_token": lead_token})

    sign_in(client, users["editor"])
    editor_token = csrf_of(client)
    denied = post_json(
        client,
        "/editor/articles/returns-label-lost/revisions/1/review",
        editor_token,
        {"approve": "1"},
    )
    assert denied.status_code == 403
    submitted = post_json(
        client, "/editor/articles/returns-label-lost/revisions/1/submit", editor_token
    )
    assert submitted.json()["state"] == "in_review"
    client.post("/desk/logout", data={"csrf_token": editor_token})

    factory = client.app.state.session_factory  # type: ignore[attr-defined]
    second_lead = make_user(factory, email="lead2@example.com", role="lead")
    sign_in(client, second_lead)
    token = csrf_of(client, "/editor/review")
    queue = client.get("/editor/review").text
    assert "returns-label-lost" in queue and "Approve" in queue
    approved = client.post(
        "/editor/articles/returns-label-lost/revisions/1/review",
        data={"csrf_token": token, "approve": "1", "comment": ""},
        follow_redirects=False,
    )
    assert approved.status_code == 303
    published = post_json(client, "/editor/publish", token)
    assert published.status_code == 200, published.text
    index = load_current(settings.index_dir, ENCODER)
    assert [a.id for a in index] == ["returns-label-lost"]


def test_concurrent_publish_requests(
    client: TestClient, users: dict[str, DeskUser], settings: Settings
) -> None:
    """Five simultaneous publish clicks: one builds, the others are told to retry."""
    sign_in(client, users["editor"])
    token = csrf_of(client)
    post_json(client, "/editor/articles", token, article())
    client.app.state.editor_encoder = SlowEncoder(0.3)  # type: ignore[attr-defined]
    start = threading.Barrier(5)
    results: list[Any] = []

    def click() -> None:
        start.wait()
        results.append(post_json(client, "/editor/publish", token))

    threads = [threading.Thread(target=click) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    codes = sorted(response.status_code for response in results)
    assert codes == [200, 409, 409, 409, 409], [r.text for r in results]
    busy = next(r for r in results if r.status_code == 409)
    assert "try again in a few seconds" in busy.json()["error"]
    factory = client.app.state.session_factory  # type: ignore[attr-defined]
    with factory() as session:
        statuses = list(session.scalars(select(KbPublication.status)))
        actions = list(session.scalars(select(AuditEvent.action)))
    assert statuses == ["succeeded"]  # refused attempts leave no publication behind
    assert actions.count("kb.published") == 1
    assert "returns-label-lost" in load_current(settings.index_dir, ENCODER)


def test_the_list_says_which_live_articles_the_tuned_encoder_never_saw(
    client: TestClient, users: dict[str, DeskUser], settings: Settings
) -> None:
    import json

    from knowledge.index import KnowledgeIndex
    from knowledge.store import publish
    from knowledge.tuning import TUNE_RECORD_FILE, _article_fingerprints

    sign_in(client, users["editor"])
    token = csrf_of(client)
    post_json(client, "/editor/articles", token, article())
    post_json(client, "/editor/articles", token, article("orders-track", title="Where is it?"))
    assert post_json(client, "/editor/publish", token).status_code == 200
    assert 'id="tune-drift"' not in client.get("/editor/articles").text  # packaged model

    # As kb tune leaves it: the live build names a tuned encoder whose tune.json records
    # the articles it learned from (here only the first, as it stood then).
    live = load_current(settings.index_dir, ENCODER)
    encoder_dir = "encoders/fake+tuned-0123"
    record = {
        "name": "fake+tuned-0123",
        "created_at": "2026-11-25T07:00:00+00:00",
        "articles": _article_fingerprints(
            [a for a in live.articles if a.id == "returns-label-lost"]
        ),
    }
    (settings.index_dir / encoder_dir).mkdir(parents=True)
    (settings.index_dir / encoder_dir / TUNE_RECORD_FILE).write_text(json.dumps(record))
    publish(
        KnowledgeIndex.build(live.articles, ENCODER, encoder_dir=encoder_dir),
        settings.index_dir,
    )

    drift = client.get("/editor/articles").text.split('id="tune-drift">', 1)[1].split("</p>")[0]
    assert "tuned on 1 article (2026-11-25)" in " ".join(drift.split())
    assert "1 live article is new or has a new title or questions since" in " ".join(drift.split())


def test_a_lead_starts_watches_and_cancels_a_tune_others_may_only_watch(
    client: TestClient, users: dict[str, DeskUser]
) -> None:
    started: list[int] = []
    client.app.state.tune_spawner = lambda settings, job_id: started.append(job_id)  # type: ignore[attr-defined]

    sign_in(client, users["editor"])
    page = client.get("/editor/articles").text
    assert 'id="tune"' in page and 'id="tune-start"' not in page  # editors watch only
    token = form_csrf(page)
    refused = post_json(client, "/editor/tune", token, {"max_minutes": "5", "epochs": "1"})
    assert refused.status_code == 403 and "lead or an admin" in refused.json()["error"]
    assert client.get("/editor/tune", headers=JSON).json() == {"job": None}
    client.post("/desk/logout", data={"csrf_token": token})

    sign_in(client, users["lead"])
    token = csrf_of(client)
    assert 'id="tune-start"' in client.get("/editor/articles").text
    assert client.post("/editor/tune", json={}, headers=JSON).status_code == 403  # no CSRF
    bad = post_json(client, "/editor/tune", token, {"max_minutes": "600", "epochs": "x"})
    assert bad.status_code == 400
    assert [p["field"] for p in bad.json()["problems"]] == ["max_minutes", "epochs"]
    assert started == []

    response = client.post(
        "/editor/tune",
        data={"max_minutes": "5", "epochs": "2", "csrf_token": token},
        follow_redirects=False,
    )  # the form, without JavaScript
    assert response.status_code == 303 and response.headers["location"] == "/editor/articles#tune"
    job = client.get("/editor/tune", headers=JSON).json()["job"]
    assert started == [job["id"]] and job["status"] == "queued" and job["active"]
    assert job["options"] == {"max_minutes": 5.0, "epochs": 2}
    busy = post_json(client, "/editor/tune", token, {"max_minutes": "5", "epochs": "1"})
    assert busy.status_code == 409 and "already running" in busy.json()["error"]
    assert started == [job["id"]]

    box = client.get("/editor/tune").text  # what the page polls every 2 s while it runs
    assert 'hx-trigger="every 2s"' in box and "<progress" in box and 'id="tune-cancel"' in box
    assert post_json(client, "/editor/tune/9999/cancel", token).status_code == 404
    assert post_json(client, "/editor/tune/x/cancel", token).status_code == 422
    cancelled = post_json(client, f"/editor/tune/{job['id']}/cancel", token)
    assert cancelled.status_code == 200 and cancelled.json()["job"]["cancel_requested"]
    assert "stopping after this step" in client.get("/editor/tune").text
    factory = client.app.state.session_factory  # type: ignore[attr-defined]
    with factory() as session:
        actions = list(session.scalars(select(AuditEvent.action)))
    assert actions.count("kb.tune_started") == 1 and "kb.tune_cancel_requested" in actions


def test_a_tune_whose_process_cannot_start_is_ended_with_a_reason(
    client: TestClient, users: dict[str, DeskUser]
) -> None:
    def broken(settings: Settings, job_id: int) -> None:
        raise OSError(12, "Cannot allocate memory")

    client.app.state.tune_spawner = broken  # type: ignore[attr-defined]
    sign_in(client, users["lead"])
    token = csrf_of(client)
    response = post_json(client, "/editor/tune", token, {"max_minutes": "5", "epochs": "1"})
    assert response.status_code == 400 and "could not start" in response.json()["error"]
    job = client.get("/editor/tune", headers=JSON).json()["job"]
    assert job["status"] == "failed" and not job["active"]
    assert job["message"] == "The tune could not start (Cannot allocate memory)."
    assert 'id="tune-start"' in client.get("/editor/tune").text  # a new one may start


def test_the_tune_process_is_started_for_real_with_the_services_settings(
    client: TestClient, users: dict[str, DeskUser], settings: Settings
) -> None:
    """The real spawn: a child ``python -m bot kb tune --job ID`` on this test's database.

    The job is cancelled before its process claims it, so the child ends it at once (no
    model is loaded); that it does proves it found the job in this test's database.
    """
    from bot.editor import tune_jobs

    sign_in(client, users["lead"])
    token = csrf_of(client)
    client.app.state.tune_spawner = lambda settings, job_id: None  # type: ignore[attr-defined]
    job = post_json(client, "/editor/tune", token, {"max_minutes": "5", "epochs": "1"}).json()
    assert post_json(client, f"/editor/tune/{job['job']['id']}/cancel", token).status_code == 200

    tune_jobs.spawn(settings, job["job"]["id"])

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        state = client.get("/editor/tune", headers=JSON).json()["job"]
        if not state["active"]:
            break
        time.sleep(0.5)
    assert state["status"] == "cancelled" and state["message"] == "Cancelled before it started."
    log = (settings.log_dir / f"kb-tune-{state['id']}.log").read_text(encoding="utf-8")
    assert f"job={state['id']}" in log


def test_the_tune_box_stops_polling_when_the_session_ends(
    client: TestClient, users: dict[str, DeskUser]
) -> None:
    client.app.state.tune_spawner = lambda settings, job_id: None  # type: ignore[attr-defined]
    sign_in(client, users["lead"])
    token = csrf_of(client)
    assert post_json(client, "/editor/tune", token, {"max_minutes": "5"}).status_code == 200
    factory = client.app.state.session_factory  # type: ignore[attr-defined]
    with factory() as session:
        session.execute(delete(AgentSession))
        session.commit()

    poll = client.get("/editor/tune", headers={"HX-Request": "true"})
    assert poll.status_code == 286 and "You were signed out" in poll.text  # htmx stops
    assert client.get("/editor/tune", follow_redirects=False).status_code == 303  # a page
    assert client.get("/editor/tune", headers=JSON).status_code == 401  # a script
