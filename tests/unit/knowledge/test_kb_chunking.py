from __future__ import annotations

import datetime

import pytest

from knowledge.articles import Article
from knowledge.chunking import chunk_article, chunk_markdown, markdown_blocks, split_sentences


def make(body: str) -> Article:
    return Article(
        id="a",
        title="T",
        audience="all",
        tags=[],
        questions=[],
        language="en",
        updated=datetime.date(2026, 1, 1),
        owner="o",
        body=body,
    )


def test_split_sentences():
    text = "Start a return in My orders.  Print the label!\nDrop it off within 14 days?"

    assert split_sentences(text) == [
        "Start a return in My orders.",
        "Print the label!",
        "Drop it off within 14 days?",
    ]


def test_split_sentences_of_blank_text():
    assert split_sentences(" \n\t ") == []


def test_markdown_is_reduced_to_plain_text():
    markdown = (
        "See **My orders** and [the returns page](https://example.com/returns) or `code`.\n\n"
        "## Steps\n\n"
        "1. Pick the *order*\n"
        "2. Print ![label](label.png)\n\n"
        "| Units | Discount |\n|---|---|\n| 5-19 | 5% |\n\n"
        "<div>html</div>\n\n"
        "**When the clock starts**\nThe day after delivery.\n"
    )

    assert markdown_blocks(markdown) == [
        ("See My orders and the returns page or code.", False),
        ("Steps", True),
        ("Pick the order", False),
        ("Print label", False),
        ("Units, Discount", False),
        ("5-19, 5%", False),
        ("When the clock starts", True),
        ("The day after delivery.", False),
    ]


def test_chunks_respect_max_chars_and_sections():
    body = (
        "Short answer here.\n\n## Details\n\n"
        + " ".join(f"Sentence number {n} says something useful." for n in range(30))
        + "\n\n## Other section\n\nLast words."
    )

    chunks = chunk_article(make(body), max_chars=200)

    assert chunks[0] == "Short answer here."
    assert all(len(chunk) <= 200 for chunk in chunks)
    assert all(chunk.startswith("Details: ") for chunk in chunks[1:-1])
    assert chunks[-1] == "Other section: Last words."
    joined = " ".join(chunks)
    assert "Sentence number 29 says something useful." in joined
    assert "#" not in joined


def test_list_items_stay_separate_sentences():
    chunks = chunk_markdown("Bring:\n\n- the item\n- the label\n")

    assert chunks == ["Bring: the item. the label."]


def test_very_long_sentence_is_split_at_words():
    chunks = chunk_markdown("word " * 200, max_chars=100)

    assert len(chunks) > 1
    assert all(len(chunk) <= 100 for chunk in chunks)


def test_max_chars_too_small():
    with pytest.raises(ValueError):
        chunk_markdown("text", max_chars=10)


def test_strip_markdown():
    from knowledge.chunking import strip_markdown

    assert strip_markdown("Open **My orders** and pick *Return items*.") == (
        "Open My orders and pick Return items."
    )
