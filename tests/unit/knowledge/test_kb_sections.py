"""Long articles: the hit carries the matched passage and its section, cited with an anchor."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from knowledge.articles import load_articles, parse_article
from knowledge.chunking import chunk_article_passages, chunk_passages
from knowledge.index import LONG_ARTICLE_CHARS, KnowledgeIndex
from tests.helpers.fake_encoder import FakeEncoder

ARTICLES_DIR = Path(__file__).resolve().parents[3] / "knowledge" / "articles"
LONG_ARTICLE = ARTICLES_DIR / "recycling-old-products.md"


@pytest.fixture(scope="module")
def demo_index() -> KnowledgeIndex:
    return KnowledgeIndex.build(load_articles(ARTICLES_DIR), FakeEncoder(dimension=256))


def test_passages_know_their_section_and_anchor():
    markdown = (
        "The short answer.\n\n## Fees at a glance\n\nA collection costs £25.\n\n"
        "**When we come**\nMonday to Saturday.\n\n## Fees at a glance\n\nAgain.\n"
    )

    passages = chunk_passages(markdown)

    assert [(p.section, p.anchor, p.body) for p in passages] == [
        (None, None, "The short answer."),
        ("Fees at a glance", "fees-at-a-glance", "A collection costs £25."),
        ("When we come", "when-we-come", "Monday to Saturday."),
        ("Fees at a glance", "fees-at-a-glance-2", "Again."),
    ]
    assert passages[1].text == "Fees at a glance: A collection costs £25."


def test_the_long_demo_article_is_long_and_has_sections():
    article = parse_article(LONG_ARTICLE)
    words = len(re.findall(r"\w+", article.body))

    assert words >= 1500
    assert len(article.body) >= LONG_ARTICLE_CHARS
    sections = {p.section for p in chunk_article_passages(article) if p.section}
    assert {"Business customers", "Missed or failed collections"} <= sections


def test_the_article_page_has_the_anchors_hits_cite():
    from bot.web.routes.articles import render_markdown

    article = parse_article(LONG_ARTICLE)
    html = render_markdown(article.body)

    page_ids = re.findall(r'<h2 id="([^"]+)"', html)
    cited = [p.anchor for p in chunk_article_passages(article) if p.anchor]
    assert page_ids == list(dict.fromkeys(cited))
    bold = render_markdown("**When the clock starts**\nThe day after delivery.")
    assert bold.startswith('<p id="when-the-clock-starts">')


def test_a_question_about_a_late_section_is_answered_with_its_passage(demo_index):
    hit = demo_index.search("Do we get a waste transfer note after a bulk collection?", 1)[0]

    assert hit.article_id == "recycling-old-products"
    assert hit.section == "Business customers"
    assert hit.section_anchor == "business-customers"
    assert hit.passage is not None and "waste transfer note" in hit.passage
    assert not hit.passage.startswith("Business customers:")
    assert hit.answer_text == hit.passage
    assert hit.answer_text != hit.summary


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw", "head"])
def test_a_picked_long_article_gives_the_passage_that_matched_the_question(kind, tmp_path):
    from knowledge.head import DEFAULT_HEAD
    from knowledge.index import AnnConfig

    encoder = FakeEncoder(dimension=256)
    articles = load_articles(ARTICLES_DIR)
    build = KnowledgeIndex.build(
        articles,
        encoder,
        head=DEFAULT_HEAD if kind == "head" else None,
        ann=None if kind in ("flat", "head") else AnnConfig(kind=kind),
    )
    build.save(tmp_path / kind)
    index = KnowledgeIndex.load(tmp_path / kind, encoder)  # vectors from faiss, not cached
    question = "Do we get a waste transfer note after a bulk collection?"

    hit = index.best_hit_in("recycling-old-products", question)

    assert hit is not None and hit.section == "Business customers"
    assert hit.passage is not None and "waste transfer note" in hit.passage
    searched = build.search(question, 1)[0]
    assert searched.article_id == "recycling-old-products"
    assert hit.score == pytest.approx(searched.score, abs=1e-5)
    short = index.best_hit_in("returns-start-a-return", question)
    assert short is not None and short.passage is None and short.answer_text == short.summary
    assert index.best_hit_in("no-such-article", question) is None
    assert index.best_hit_in("recycling-old-products", "   ") is None


def test_short_articles_keep_their_summary_and_no_section(demo_index):
    hit = demo_index.search("When does the return period start after delivery?", 1)[0]

    assert hit.article_id != "recycling-old-products"
    assert hit.passage is None and hit.section is None and hit.section_anchor is None
    assert hit.answer_text == hit.summary


def test_sections_survive_save_and_load(tmp_path):
    encoder = FakeEncoder()
    articles = [parse_article(LONG_ARTICLE)]
    KnowledgeIndex.build(articles, encoder).save(tmp_path / "build")

    loaded = KnowledgeIndex.load(tmp_path / "build", encoder)
    hit = loaded.search("certificate of data destruction by serial number", 1)[0]

    assert hit.section == "Business customers"
    assert hit.section_anchor == "business-customers"


def test_the_action_cites_the_section():
    from actions.knowledge import citation

    assert citation("a", "T", 0.81234, section="Business customers", anchor="business") == {
        "citation": {
            "article_id": "a",
            "title": "T",
            "score": 0.812,
            "section": "Business customers",
            "anchor": "business",
        }
    }
    assert citation("a", "T", None) == {
        "citation": {"article_id": "a", "title": "T", "score": None}
    }


def test_the_head_learns_from_a_few_passages_of_a_long_article():
    from knowledge.index import HEAD_PASSAGES_PER_ARTICLE, _head_rows

    index = KnowledgeIndex.build([parse_article(LONG_ARTICLE)], FakeEncoder())
    sources = index.sources
    rows = _head_rows(sources)

    kinds = [sources[row].kind for row in rows]
    passages = [row for row in rows if sources[row].kind == "chunk"]
    assert kinds.count("title") == 1 and kinds.count("question") == 4
    assert len(passages) == HEAD_PASSAGES_PER_ARTICLE
    assert sources[passages[-1]].section == "Missed or failed collections"  # spread to the end
