"""The content-gaps page and its JSON twin through the FastAPI app: roles, escaping, days."""

from __future__ import annotations

import datetime as dt
import html as html_lib
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from bot.agents.service import create_agent, start_session
from bot.config import Settings
from bot.content_gaps.service import ContentGapsService
from bot.conversations.models import Conversation, Message
from bot.db.base import utcnow
from bot.db.session import create_db_engine, create_session_factory
from bot.reports.queries import KB_NO_ANSWER_REPLIES
from bot.web.auth import SESSION_COOKIE
from knowledge.answering import AnswerPolicy
from knowledge.articles import load_articles
from knowledge.index import KnowledgeIndex
from tests.helpers.fake_encoder import FakeEncoder

PASSWORD = "correct horse battery"
HOSTILE = '<script>alert("gap")</script> do you ship <b>to Mars</b>?'


@pytest.fixture
def db(settings: Settings) -> Iterator[Session]:
    engine = create_db_engine(settings.database_url)
    with create_session_factory(engine)() as session:
        yield session
    engine.dispose()


@pytest.fixture
def service(client: TestClient, settings: Settings) -> ContentGapsService:
    """A content-gaps service on the test article, with the hashing encoder."""
    index = KnowledgeIndex.build(
        load_articles(Path(settings.articles_dir) / "returns"), FakeEncoder()
    )
    gaps = ContentGapsService(
        encoder_source=lambda: ("test-build", index.encoder),
        search=index,
        policy=AnswerPolicy(answer_threshold=0.9, suggest_threshold=0.5, limit=3),
    )
    client.app.state.content_gaps = gaps  # type: ignore[attr-defined]
    return gaps


@pytest.fixture
def seeded(db: Session) -> None:
    now = utcnow()
    db.add_all([Conversation(id=f"c{n}", created_at=now) for n in range(3)])
    db.flush()
    rows = [
        ("c0", "customer", HOSTILE),
        ("c0", "bot", KB_NO_ANSWER_REPLIES[0]),
        ("c1", "customer", "Can I send back something I bought in a shop?"),
        ("c1", "bot", KB_NO_ANSWER_REPLIES[0]),
        ("c2", "customer", "can i send back something i bought in a shop"),
        ("c2", "bot", KB_NO_ANSWER_REPLIES[0]),
    ]
    for offset, (conversation, role, text) in enumerate(rows):
        db.add(
            Message(
                conversation_id=conversation,
                role=role,
                text=text,
                created_at=now - dt.timedelta(minutes=10 - offset),
            )
        )
    db.commit()


def sign_in(client: TestClient, db: Session, *, role: str) -> None:
    agent = create_agent(
        db, email=f"{role}@example.com", name=role.title(), password=PASSWORD, role=role
    )
    new = start_session(
        db, agent=agent, lifetime=dt.timedelta(hours=1), second_factor_pending=False
    )
    client.cookies.set(SESSION_COOKIE, new.token)


@pytest.mark.parametrize("role", ["editor", "lead", "admin"])
def test_editors_leads_and_admins_see_the_groups(
    client: TestClient, db: Session, service: ContentGapsService, seeded: None, role: str
) -> None:
    sign_in(client, db, role=role)

    response = client.get("/editor/gaps")

    assert response.status_code == 200, response.text
    page = response.text
    words = " ".join(page.split())
    assert "<h1>Content gaps</h1>" in page
    assert "3 questions in 2 groups." in words
    assert "At most the 1000 most recent questions of a period are grouped." in words
    # The two near-identical wordings are one group of two, shown first, with the article.
    group = page.split('class="card gap-group"')[1]
    assert "<dd>2</dd>" in group
    assert 'href="/articles/returns-start-a-return"' in group
    links = re.findall(r'class="button[^"]*" href="([^"]+)"', group)
    new, add = (urlsplit(html_lib.unescape(link)) for link in links)
    assert new.path == "/editor/articles/new"
    assert parse_qs(new.query)["question"] == ["can i send back something i bought in a shop"]
    assert add.path == "/editor/articles/returns-start-a-return/edit"
    assert parse_qs(add.query)["add_question"] == ["can i send back something i bought in a shop"]
    assert "&amp;question=" in links[0]  # the & between parameters is escaped in HTML


def test_customer_text_is_escaped_everywhere(
    client: TestClient, db: Session, service: ContentGapsService, seeded: None
) -> None:
    sign_in(client, db, role="editor")

    page = client.get("/editor/gaps").text

    assert "<script>alert" not in page and "<b>to Mars</b>" not in page
    assert "&lt;script&gt;alert(&#34;gap&#34;)&lt;/script&gt;" in page
    assert re.search(r"<script>", page) is None  # and no inline script at all (CSP)
    hostile_link = next(
        html_lib.unescape(link)
        for link in re.findall(r'class="button[^"]*" href="([^"]+)"', page)
        if "Mars" in html_lib.unescape(link)
    )
    assert "<" not in hostile_link and '"' not in hostile_link
    assert parse_qs(urlsplit(hostile_link).query)["question"] == [HOSTILE]


def test_json_twin(
    client: TestClient, db: Session, service: ContentGapsService, seeded: None
) -> None:
    sign_in(client, db, role="editor")

    response = client.get("/editor/api/gaps", params={"days": 7})

    assert response.status_code == 200
    data = response.json()
    assert data["period"]["days"] == 7
    assert (data["questions_considered"], data["limit"], data["truncated"]) == (3, 1000, False)
    assert data["build_id"] == "test-build" and data["grouped_by_meaning"] is True
    assert [group["count"] for group in data["groups"]] == [2, 1]
    assert data["groups"][1]["examples"] == [HOSTILE]  # JSON carries the raw text
    assert data["groups"][0]["nearest"]["article_id"] == "returns-start-a-return"


def test_groups_offer_to_decline_into_the_out_of_scope_article(
    client: TestClient, db: Session, service: ContentGapsService, seeded: None, settings: Settings
) -> None:
    listed = load_articles(Path(settings.articles_dir) / "returns")[0].model_copy(
        update={"id": "not-ours", "title": "Not our business", "tags": ["out-of-scope"]}
    )
    client.app.state.content_gaps = ContentGapsService(  # type: ignore[attr-defined]
        encoder_source=service.encoder_source,
        search=service.search,
        policy=service.policy,
        out_of_scope=lambda: [listed],
    )
    sign_in(client, db, role="editor")

    page = client.get("/editor/gaps").text

    group = page.split('class="card gap-group"')[1]
    assert "Decline: add to “Not our business”" in group
    links = [urlsplit(html_lib.unescape(link)) for link in re.findall(r'href="([^"]+)"', group)]
    decline = next(link for link in links if link.path == "/editor/articles/not-ours/edit")
    assert parse_qs(decline.query)["add_question"] == [
        "can i send back something i bought in a shop"
    ]


def test_without_an_out_of_scope_article_a_group_can_start_one(
    client: TestClient, db: Session, service: ContentGapsService, seeded: None
) -> None:
    client.app.state.content_gaps = ContentGapsService(  # type: ignore[attr-defined]
        encoder_source=service.encoder_source,
        search=service.search,
        policy=service.policy,
        out_of_scope=lambda: [],
    )
    sign_in(client, db, role="editor")

    group = client.get("/editor/gaps").text.split('class="card gap-group"')[1]

    assert "Decline: start a list of questions not to answer" in group
    starts = [
        urlsplit(html_lib.unescape(link))
        for link in re.findall(r'href="([^"]+)"', group)
        if "tag=" in link
    ]
    assert len(starts) == 1 and parse_qs(starts[0].query)["tag"] == ["out-of-scope"]
    form = client.get(html_lib.unescape(re.findall(r'href="([^"]+tag=[^"]+)"', group)[0]))
    assert 'name="tags" value="out-of-scope"' in form.text


def with_declining_article(client: TestClient, settings: Settings, **options: int) -> None:
    """The content-gaps service over the test article plus an out-of-scope article that
    declines the seeded "send back something I bought in a shop" questions."""
    returns = load_articles(Path(settings.articles_dir) / "returns")
    listed = returns[0].model_copy(
        update={
            "id": "not-ours",
            "title": "Not our business",
            "tags": ["out-of-scope"],
            "questions": ["can i send back something i bought in a shop"],
        }
    )
    index = KnowledgeIndex.build([*returns, listed], FakeEncoder())
    client.app.state.content_gaps = ContentGapsService(  # type: ignore[attr-defined]
        encoder_source=lambda: ("test-build", index.encoder),
        search=index,
        policy=AnswerPolicy(answer_threshold=0.9, suggest_threshold=0.5, limit=3),
        out_of_scope=lambda: index.out_of_scope_articles,
        **options,
    )


def test_a_group_declined_on_purpose_says_so(
    client: TestClient, db: Session, seeded: None, settings: Settings
) -> None:
    with_declining_article(client, settings)
    sign_in(client, db, role="editor")

    page = client.get("/editor/gaps").text

    # Listed last, folded away under its own heading: it is not a gap to fill.
    listed, folded = page.split('id="gaps-declined"')
    assert "Declined on purpose" not in listed
    assert 'class="card gap-group"' in listed  # the other group stays on top
    assert "1 group the bot declines on purpose" in " ".join(folded.split())
    group = folded.split('class="card gap-group"')[1]
    words = " ".join(group.split())
    assert "Declined on purpose: the out-of-scope article" in words
    assert 'href="/editor/articles/not-ours/edit">Not our business</a>' in group
    assert "Decline: add to" not in group  # already declined: no second button for it


def test_declined_groups_do_not_count_towards_the_cut(
    client: TestClient, db: Session, seeded: None, settings: Settings
) -> None:
    db.add(Conversation(id="c3", created_at=utcnow()))
    db.flush()
    db.add_all(
        [
            Message(conversation_id="c3", role="customer", text="How do I return an item?"),
            Message(conversation_id="c3", role="bot", text=KB_NO_ANSWER_REPLIES[0]),
        ]
    )
    db.commit()
    with_declining_article(client, settings, max_groups=1)
    sign_in(client, db, role="editor")

    page = " ".join(client.get("/editor/gaps").text.split())

    # The declined group is the largest (two questions), yet one group to fill is shown.
    assert "Showing 2 of 3 groups: the largest 1 to fill and 1 declined on purpose." in page
    listed_part, folded = page.split('id="gaps-declined"')
    assert listed_part.count('class="card gap-group"') == 1
    assert folded.count('class="card gap-group"') == 1


def test_agents_are_refused(client: TestClient, db: Session, service: ContentGapsService) -> None:
    sign_in(client, db, role="agent")

    assert client.get("/editor/gaps").status_code == 403
    assert client.get("/editor/api/gaps").status_code == 403


def test_signed_out_page_redirects_and_api_answers_401(client: TestClient) -> None:
    page = client.get("/editor/gaps?days=7", follow_redirects=False)
    api = client.get("/editor/api/gaps", follow_redirects=False)

    assert page.status_code == 303
    assert page.headers["location"] == "/desk/login?next=/editor/gaps"
    assert api.status_code == 401 and api.json() == {"error": "Please sign in."}


@pytest.mark.parametrize("days", ["0", "366", "-1", "abc", "1e3"])
def test_days_are_validated(
    client: TestClient, db: Session, service: ContentGapsService, days: str
) -> None:
    sign_in(client, db, role="editor")

    assert client.get("/editor/gaps", params={"days": days}).status_code == 422
    assert client.get("/editor/api/gaps", params={"days": days}).status_code == 422


def test_empty_period_and_cache(
    client: TestClient, db: Session, service: ContentGapsService
) -> None:
    sign_in(client, db, role="lead")

    page = client.get("/editor/gaps", params={"days": 1}).text
    client.get("/editor/gaps", params={"days": 1})

    assert "No unanswered or unhelpful questions in this period." in " ".join(page.split())
    assert service.computations == 1


def test_reports_page_links_to_the_gaps(client: TestClient, db: Session) -> None:
    sign_in(client, db, role="admin")

    page = client.get("/desk/reports", params={"days": 7}).text

    assert 'href="/editor/gaps?days=7"' in page


def test_without_a_knowledge_index_the_page_still_lists_questions(
    client: TestClient, db: Session, seeded: None
) -> None:
    # No service injected: the real one follows settings.index_dir, where nothing is built.
    sign_in(client, db, role="editor")

    page = " ".join(client.get("/editor/gaps").text.split())

    assert "Grouping by meaning is unavailable" in page
    assert "Nearest articles are unavailable" in page
    assert "can i send back something i bought in a shop" in page


def test_start_a_new_article_link_opens_the_prefilled_editor(
    client: TestClient, db: Session, service: ContentGapsService, seeded: None
) -> None:
    client.app.state.editor_encoder = FakeEncoder()  # type: ignore[attr-defined]
    sign_in(client, db, role="editor")
    page = client.get("/editor/gaps").text
    hostile_link = next(
        html_lib.unescape(link)
        for link in re.findall(r'class="button[^"]*" href="([^"]+)"', page)
        if link.startswith("/editor/articles/new") and "Mars" in html_lib.unescape(link)
    )

    form = client.get(hostile_link)

    assert form.status_code == 200, form.text
    assert "&lt;script&gt;alert(&#34;gap&#34;)&lt;/script&gt;" in form.text
    assert '<script>alert("gap")' not in form.text
    assert client.get("/editor/articles").text.count('href="/editor/gaps"') == 1
