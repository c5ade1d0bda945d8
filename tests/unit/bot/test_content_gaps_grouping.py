"""Grouping of content gaps: near-duplicates, clustering, group figures, links and the cache.

The algorithm is tested with hand-made vectors and the deterministic hashing encoder
(``tests/helpers/fake_encoder.py``); the real ONNX encoder is exercised in
``tests/integration/test_content_gaps_real.py``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from bot.content_gaps.collect import Collected, GapQuestion
from bot.content_gaps.grouping import cluster_vectors, embed, medoid, merge_near_duplicates
from bot.content_gaps.service import (
    MAX_LINK_CHARS,
    MAX_LINK_QUESTIONS,
    ContentGapsService,
    add_questions_url,
    build_gaps,
    group_questions,
    new_article_url,
)
from bot.reports.queries import ReportPeriod
from knowledge.answering import AnswerPolicy
from knowledge.articles import Article, load_articles, parse_article
from knowledge.index import KnowledgeIndex
from tests.helpers.fake_encoder import FakeEncoder

NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
POLICY = AnswerPolicy(answer_threshold=0.9, suggest_threshold=0.6, limit=3)
ARTICLE = """---
id: {id}
title: {title}
audience: b2c
tags: [test]
questions:
  - {question}
language: en
updated: 2026-10-14
owner: test
---
{body}
"""


def question(
    number: int,
    text: str,
    *,
    minutes: int = 0,
    kind: str = "unanswered",
    conversation: str | None = None,
    contact: int | None = None,
    article: str | None = None,
) -> GapQuestion:
    return GapQuestion(
        message_id=number,
        conversation_id=conversation or f"c{number}",
        contact_id=contact,
        segment=None,
        text=text,
        asked_at=NOW - dt.timedelta(minutes=minutes),
        kind=kind,  # type: ignore[arg-type]
        article_id=article,
    )


@pytest.fixture
def index(tmp_path: Path) -> KnowledgeIndex:
    folder = tmp_path / "articles"
    folder.mkdir()
    for article_id, title, asked, body in [
        (
            "delivery-costs",
            "How much is delivery?",
            "What does shipping cost?",
            "Delivery costs 4 euros.",
        ),
        (
            "refunds-timing",
            "When will I get my refund?",
            "How long do refunds take?",
            "Refunds take 5 days.",
        ),
    ]:
        (folder / f"{article_id}.md").write_text(
            ARTICLE.format(id=article_id, title=title, question=asked, body=body), encoding="utf-8"
        )
    return KnowledgeIndex.build(load_articles(folder), FakeEncoder())


# -- near-identical phrasings ---------------------------------------------------------------


def test_near_identical_wordings_merge_and_show_the_latest() -> None:
    texts = [
        "Do you sell gift wrapping?",
        "do you sell  gift wrapping",
        "Do you sell gift wraping?",  # a typo
        "Can I pay with bitcoin?",
        "Do you sell gift wrapping!!",
        "  ",
    ]

    phrasings = merge_near_duplicates(texts)

    assert [p.members for p in phrasings] == [(0, 1, 2, 4), (3,)]
    assert phrasings[0].text == "Do you sell gift wrapping!!"  # the most recent wording
    assert phrasings[0].key == "do you sell gift wrapping"
    assert phrasings[1].text == "Can I pay with bitcoin?"


def test_different_questions_with_shared_words_stay_apart() -> None:
    phrasings = merge_near_duplicates(["Can I return a gift?", "Can I wrap a gift?"])

    assert len(phrasings) == 2


# -- clustering -----------------------------------------------------------------------------


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def test_average_linkage_groups_close_vectors_and_keeps_an_outlier_alone() -> None:
    vectors = np.vstack(
        [
            unit(1, 0.1, 0),
            unit(0, 1, 0.1),
            unit(1, 0, 0.1),
            unit(0.1, 1, 0),
            unit(0, 0, 1),
        ]
    )

    assert cluster_vectors(vectors, threshold=0.9) == [0, 1, 0, 1, 2]
    assert cluster_vectors(vectors, threshold=-1.0) == [0, 0, 0, 0, 0]
    assert cluster_vectors(vectors, threshold=1.0) == [0, 1, 2, 3, 4]


def test_average_linkage_does_not_chain_through_a_bridge() -> None:
    # a and b are far apart; "bridge" sits between them. Single linkage would join all
    # three at a threshold the bridge meets with each end; average linkage does not.
    a, bridge, b = unit(1, 0), unit(1, 1), unit(0, 1)
    vectors = np.vstack([a, bridge, b])

    labels = cluster_vectors(vectors, threshold=0.7)

    assert labels[0] != labels[2]


def test_cluster_edge_cases() -> None:
    assert cluster_vectors(np.zeros((0, 3), dtype=np.float32)) == []
    assert cluster_vectors(np.vstack([unit(1, 0)])) == [0]
    with pytest.raises(ValueError, match="threshold"):
        cluster_vectors(np.vstack([unit(1, 0), unit(0, 1)]), threshold=1.5)


def test_medoid_is_the_most_central_and_weights_count() -> None:
    vectors = np.vstack([unit(1, 0), unit(1, 1), unit(0, 1)])

    assert medoid(vectors) == 1
    assert medoid(vectors, [10, 1, 1]) == 0


def test_embed_batches_and_normalises() -> None:
    encoder = FakeEncoder()

    vectors = embed(encoder, [f"question number {n}" for n in range(5)], batch=2)

    assert [len(call) for call in encoder.calls] == [2, 2, 1]
    assert vectors.shape == (5, 64)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)


# -- groups ---------------------------------------------------------------------------------


def test_groups_carry_counts_examples_nearest_article_and_links(index: KnowledgeIndex) -> None:
    questions = [
        question(1, "What does shipping cost to Mars?", minutes=50, contact=7),
        question(2, "what does shipping cost to mars", minutes=40, contact=7, conversation="c9"),
        question(3, "Shipping cost to Mars please", minutes=30),
        question(
            4,
            "What does shipping cost to Mars?",
            minutes=10,
            kind="unhelpful",
            article="delivery-costs",
        ),
        question(5, "Do you sell reindeer saddles?", minutes=20),
    ]

    groups, total, nearest_ok = group_questions(
        questions, encoder=FakeEncoder(), search=index, policy=POLICY, threshold=0.5
    )

    assert nearest_ok and total == 2
    assert [g.count for g in groups] == [4, 1]
    mars = groups[0]
    assert (mars.unanswered, mars.unhelpful, mars.unhelpful_share) == (3, 1, 0.25)
    assert mars.conversations == 4  # c1, c9, c3, c4
    assert mars.customers == 3  # contact 7 (two conversations), and two anonymous ones
    assert mars.phrasings == 2
    assert mars.examples == ["What does shipping cost to Mars?", "Shipping cost to Mars please"]
    assert mars.first_seen == NOW - dt.timedelta(minutes=50)
    assert mars.last_seen == NOW - dt.timedelta(minutes=10)
    assert mars.answered_with == ["delivery-costs"]
    assert mars.title == "What does shipping cost to Mars?"
    assert mars.nearest is not None and mars.nearest.article_id == "delivery-costs"
    assert mars.nearest.band in ("answer", "suggest", "unknown")
    assert mars.add_to_article_url is not None
    link = urlsplit(mars.add_to_article_url)
    assert link.path == "/editor/articles/delivery-costs/edit"
    assert parse_qs(link.query)["add_question"] == mars.examples
    new = urlsplit(mars.new_article_url)
    assert new.path == "/editor/articles/new"
    assert parse_qs(new.query) == {"title": [mars.title], "question": mars.examples}
    assert groups[1].examples == ["Do you sell reindeer saddles?"]


def test_without_an_index_groups_have_no_nearest_article() -> None:
    groups, _total, nearest_ok = group_questions(
        [question(1, "Do you sell reindeer saddles?")],
        encoder=FakeEncoder(),
        search=None,
        policy=POLICY,
    )

    assert not nearest_ok
    assert groups[0].nearest is None and groups[0].add_to_article_url is None


def out_of_scope_article(folder: Path, article_id: str, title: str, asked: str) -> Article:
    """An article tagged out-of-scope (questions to decline), read back from its file."""
    text = ARTICLE.format(id=article_id, title=title, question=asked, body="No.")
    path = folder / f"{article_id}.md"
    path.write_text(text.replace("tags: [test]", "tags: [out-of-scope]"), encoding="utf-8")
    return parse_article(path)


def test_groups_link_to_the_out_of_scope_article_when_there_is_one(
    tmp_path: Path, index: KnowledgeIndex
) -> None:
    listed = [
        out_of_scope_article(tmp_path, "zz-not-ours", "Later by id", "Tell me a joke"),
        out_of_scope_article(tmp_path, "not-ours", "Not our business", "Tell me a joke"),
    ]
    declining = KnowledgeIndex.build(
        [*index.articles, *listed], FakeEncoder()
    ).out_of_scope_articles
    asked = [question(1, "Do you sell reindeer saddles?"), question(2, "Reindeer saddles")]

    groups, _, _ = group_questions(
        asked, encoder=FakeEncoder(), search=index, policy=POLICY, out_of_scope=declining
    )
    without, _, _ = group_questions(asked, encoder=FakeEncoder(), search=index, policy=POLICY)

    assert [a.id for a in declining] == ["not-ours", "zz-not-ours"]
    assert groups[0].decline is not None and groups[0].decline.article_id == "not-ours"
    assert groups[0].decline.title == "Not our business"
    assert groups[0].decline_url is not None
    link = urlsplit(groups[0].decline_url)
    assert link.path == "/editor/articles/not-ours/edit"
    assert parse_qs(link.query)["add_question"] == groups[0].examples
    assert without[0].decline is None and without[0].decline_url is None
    none_yet, _, _ = group_questions(
        asked, encoder=FakeEncoder(), search=index, policy=POLICY, out_of_scope=[]
    )
    start = urlsplit(none_yet[0].decline_url or "")
    assert none_yet[0].decline is None and start.path == "/editor/articles/new"
    assert parse_qs(start.query) == {
        "title": ["Questions we do not answer"],
        "question": none_yet[0].examples,
        "tag": ["out-of-scope"],
    }


@pytest.fixture
def declining(tmp_path: Path, index: KnowledgeIndex) -> KnowledgeIndex:
    """The test index plus an out-of-scope article that declines reindeer saddles."""
    listed = out_of_scope_article(
        tmp_path, "not-ours", "Not our business", "Do you sell reindeer saddles?"
    )
    return KnowledgeIndex.build([*index.articles, listed], FakeEncoder())


def test_a_group_the_out_of_scope_article_declines_says_so(declining: KnowledgeIndex) -> None:
    asked = [question(1, "Do you sell reindeer saddles?"), question(2, "Shipping cost to Mars")]

    groups, _, nearest_ok = group_questions(
        asked, encoder=FakeEncoder(), search=declining, policy=POLICY, threshold=0.9
    )

    by_title = {group.title: group for group in groups}
    saddles = by_title["Do you sell reindeer saddles?"].nearest
    assert nearest_ok and saddles is not None
    assert (saddles.article_id, saddles.band) == ("not-ours", "declined")
    assert saddles.url == "/editor/articles/not-ours/edit"
    mars = by_title["Shipping cost to Mars"].nearest
    assert mars is not None and mars.article_id == "delivery-costs"


def test_failing_out_of_scope_lookup_only_drops_the_decline_link() -> None:
    def broken() -> list[object]:
        raise RuntimeError("no build")

    gaps = build_gaps(
        Collected(questions=[question(1, "Reindeer saddles?")], found=1, limit=10),
        period=ReportPeriod.last(30, now=NOW),
        encoder_source=None,
        search=None,
        policy=POLICY,
        out_of_scope=broken,  # type: ignore[arg-type]
    )

    assert [g.title for g in gaps.groups] == ["Reindeer saddles?"]
    assert gaps.groups[0].decline_url is None


def test_an_unavailable_encoder_still_lists_the_questions() -> None:
    def broken() -> tuple[str | None, FakeEncoder]:
        raise RuntimeError("no build")

    collected = Collected(
        questions=[question(1, "Reindeer saddles?"), question(2, "Gift wrap?")], found=2, limit=10
    )

    gaps = build_gaps(
        collected,
        period=ReportPeriod.last(30, now=NOW),
        encoder_source=broken,
        search=None,
        policy=POLICY,
    )

    assert not gaps.grouped_by_meaning
    assert sorted(g.title for g in gaps.groups) == ["Gift wrap?", "Reindeer saddles?"]


def test_links_are_encoded_and_capped() -> None:
    hostile = ["a&title=x#frag?/..", "é ☃ <b>", "x" * 500, *[f"q{n}" for n in range(10)]]

    url = new_article_url("Title & more?" + "y" * 300, hostile)

    parts = urlsplit(url)
    assert "#" not in url and " " not in url and "<" not in url
    query = parse_qs(parts.query)
    assert query["question"][:2] == ["a&title=x#frag?/..", "é ☃ <b>"]
    assert len(query["question"]) == MAX_LINK_QUESTIONS
    assert len(query["question"][2]) == MAX_LINK_CHARS
    assert query["title"][0].startswith("Title & more?") and len(query["title"][0]) <= 120
    edit = urlsplit(add_questions_url("weird/../id?x", ["one"]))
    assert edit.path == "/editor/articles/weird%2F..%2Fid%3Fx/edit"


# -- cache ----------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_results_are_cached_per_questions_and_expire(
    session,
    index: KnowledgeIndex,  # the unit conftest's migrated SQLite session
) -> None:
    from bot.conversations.models import Conversation, Message
    from bot.reports.queries import KB_NO_ANSWER_REPLIES

    session.add(Conversation(id="conv", created_at=NOW, updated_at=NOW))
    session.flush()
    session.add_all(
        [
            Message(
                conversation_id="conv", role="customer", text="Do you sell saddles?", created_at=NOW
            ),
            Message(
                conversation_id="conv", role="bot", text=KB_NO_ANSWER_REPLIES[0], created_at=NOW
            ),
        ]
    )
    session.commit()
    clock = FakeClock()
    encoder = FakeEncoder()
    service = ContentGapsService(
        encoder_source=lambda: ("build-1", encoder),
        search=index,
        policy=POLICY,
        cache_seconds=60,
        cache_entries=2,
        clock=clock,
    )

    first = service.gaps(session, days=7, now=NOW)
    again = service.gaps(session, days=7, now=NOW)
    assert again is first and service.computations == 1
    assert first.groups[0].examples == ["Do you sell saddles?"]

    service.gaps(session, days=30, now=NOW)  # another period: another entry
    assert service.computations == 2

    session.add_all(
        [
            Message(conversation_id="conv", role="customer", text="Gift wrap?", created_at=NOW),
            Message(
                conversation_id="conv", role="bot", text=KB_NO_ANSWER_REPLIES[0], created_at=NOW
            ),
        ]
    )
    session.commit()
    fresh = service.gaps(session, days=7, now=NOW)  # a new question: recomputed
    assert service.computations == 3 and fresh.questions_considered == 2

    clock.now = 61
    service.gaps(session, days=7, now=NOW)  # expired
    assert service.computations == 4
    assert len(service._cache) <= 2


def test_only_the_largest_groups_are_described_and_searched(index: KnowledgeIndex) -> None:
    searched: list[str] = []

    class CountingIndex:
        def search(self, query: str, limit: int = 3, *, audience: str | None = None) -> list:
            searched.append(query)
            return index.search(query, limit, audience=audience)

    questions = [question(1, "Do you sell reindeer saddles?", minutes=5)]
    questions += [question(n, "Can I pay with seashells?", minutes=n) for n in (2, 3, 4)]
    questions.append(question(9, "Is the moon shop open?", minutes=1))

    groups, total, _ = group_questions(
        questions,
        encoder=FakeEncoder(),
        search=CountingIndex(),
        policy=POLICY,
        threshold=0.9,
        max_groups=2,
    )

    assert total == 3
    assert [g.title for g in groups] == ["Can I pay with seashells?", "Is the moon shop open?"]
    assert set(searched) == {"Can I pay with seashells?", "Is the moon shop open?"}


def test_declined_groups_do_not_push_gaps_to_fill_off_the_list(
    declining: KnowledgeIndex,
) -> None:
    questions = [question(n, "Do you sell reindeer saddles?", minutes=n) for n in (1, 2, 3)]
    questions += [question(n, "Shipping cost to Mars", minutes=n) for n in (4, 5)]
    questions.append(question(9, "Is the moon shop open?", minutes=1))

    def listed(max_groups: int) -> list[tuple[str, bool]]:
        groups, total, _ = group_questions(
            questions,
            encoder=FakeEncoder(),
            search=declining,
            policy=POLICY,
            threshold=0.9,
            max_groups=max_groups,
        )
        assert total == 3
        return [(g.title, g.declined_on_purpose) for g in groups]

    assert listed(2) == [
        ("Do you sell reindeer saddles?", True),
        ("Shipping cost to Mars", False),
        ("Is the moon shop open?", False),
    ]
    assert listed(1) == [("Do you sell reindeer saddles?", True), ("Shipping cost to Mars", False)]


def test_a_new_live_build_is_not_served_from_the_cache(session, index: KnowledgeIndex) -> None:
    from bot.conversations.models import Conversation, Message
    from bot.reports.queries import KB_NO_ANSWER_REPLIES

    session.add(Conversation(id="conv", created_at=NOW, updated_at=NOW))
    session.flush()
    session.add_all(
        [
            Message(conversation_id="conv", role="customer", text="Saddles?", created_at=NOW),
            Message(
                conversation_id="conv", role="bot", text=KB_NO_ANSWER_REPLIES[0], created_at=NOW
            ),
        ]
    )
    session.commit()
    live = {"build": "build-1"}
    encoder = FakeEncoder()
    service = ContentGapsService(
        encoder_source=lambda: (live["build"], encoder),
        build_probe=lambda: live["build"],
        search=index,
        policy=POLICY,
    )

    assert service.gaps(session, days=7, now=NOW).build_id == "build-1"
    service.gaps(session, days=7, now=NOW)
    assert service.computations == 1
    live["build"] = "build-2"  # an editor published
    assert service.gaps(session, days=7, now=NOW).build_id == "build-2"
    assert service.computations == 2


def test_a_recomputation_embeds_only_new_questions(session, index: KnowledgeIndex) -> None:
    from bot.conversations.models import Conversation, Message
    from bot.reports.queries import KB_NO_ANSWER_REPLIES

    def ask(text: str) -> None:
        session.add_all(
            [
                Message(conversation_id="conv", role="customer", text=text, created_at=NOW),
                Message(
                    conversation_id="conv", role="bot", text=KB_NO_ANSWER_REPLIES[0], created_at=NOW
                ),
            ]
        )
        session.commit()

    session.add(Conversation(id="conv", created_at=NOW, updated_at=NOW))
    session.flush()
    ask("Do you sell saddles?")
    ask("Can I pay with seashells?")
    encoder = FakeEncoder()
    service = ContentGapsService(
        encoder_source=lambda: ("build-1", encoder), search=index, policy=POLICY
    )

    service.gaps(session, days=7, now=NOW)
    ask("Is the moon shop open?")
    gaps = service.gaps(session, days=7, now=NOW)

    assert service.computations == 2 and gaps.questions_considered == 3
    # The grouping encoder (the index has its own) saw each question once.
    assert len(encoder.calls) == 2
    assert sorted(encoder.calls[0]) == ["Can I pay with seashells?", "Do you sell saddles?"]
    assert encoder.calls[1] == ["Is the moon shop open?"]
