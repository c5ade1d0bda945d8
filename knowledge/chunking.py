"""Split article bodies into plain-text passages for the search index.

Markdown is parsed with markdown-it-py and reduced to plain text blocks (headings,
paragraphs, list items, table rows). Paragraphs are split into sentences with a blank
spaCy English pipeline plus the rule-based ``sentencizer`` (no model download), and
consecutive sentences of a section are packed into passages of at most ``max_chars``
characters. A heading starts a new passage and is prefixed to each passage of its
section, so every passage keeps its topic.

Every section heading (a Markdown heading, or a paragraph whose first line is entirely
bold) gets a stable anchor (:func:`section_anchor`, numbered ``-2``, ``-3`` when a
heading repeats). :func:`chunk_passages` tells which section each passage came from, so a
search hit can cite that section, and :func:`add_heading_anchors` puts the same anchors on
the article's web page.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from markdown_it import MarkdownIt

if TYPE_CHECKING:
    from spacy.language import Language

    from knowledge.articles import Article

__all__ = [
    "DEFAULT_MAX_CHARS",
    "Passage",
    "add_heading_anchors",
    "chunk_article",
    "chunk_article_passages",
    "chunk_markdown",
    "chunk_passages",
    "markdown_blocks",
    "section_anchor",
    "split_sentences",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_CHARS = 400
_SPACES = re.compile(r"\s+")
_TERMINATORS = (".", "!", "?", ":", ";", "…", '"', "'", ")")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_ANCHOR_MAX_CHARS = 60


@lru_cache(maxsize=1)
def _nlp() -> Language:
    """Build the blank English pipeline with a sentencizer once per process."""
    from knowledge.nlp import blank_english

    nlp = blank_english()
    nlp.add_pipe("sentencizer")
    logger.debug("Built blank spaCy pipeline: %s", nlp.pipe_names)
    return nlp


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark").enable("table").enable("strikethrough")


def split_sentences(text: str) -> list[str]:
    """Split plain text into sentences.

    Args:
        text: Plain text; runs of whitespace are collapsed first.

    Returns:
        The non-empty sentences, stripped.
    """
    cleaned = _SPACES.sub(" ", text).strip()
    if not cleaned:
        return []
    return [sentence.text.strip() for sentence in _nlp()(cleaned).sents if sentence.text.strip()]


@dataclass(frozen=True)
class Passage:
    """One passage of an article's body and the section it belongs to.

    Attributes:
        text: What is encoded: the section's (shortened) heading, ``": "``, then the
            passage's sentences.
        section: The full heading of the passage's section (``None`` before the first
            heading).
        anchor: The section's anchor on the article page (``None`` with no section).
        body_start: Where the sentences start in ``text`` (after the heading prefix).
    """

    text: str
    section: str | None = None
    anchor: str | None = None
    body_start: int = 0

    @property
    def body(self) -> str:
        """The passage's sentences without the heading prefix."""
        return self.text[self.body_start :]


@dataclass
class _Block:
    """A run of plain text from the Markdown: a heading or a paragraph-like block."""

    text: str
    heading: bool = False
    anchor: str | None = None
    opener: int | None = None  # index of the token that opens a heading's block


def section_anchor(heading: str) -> str:
    """Return the anchor slug of a section heading (before numbering repeats).

    Args:
        heading: The heading's plain text.

    Returns:
        Lowercase letters and digits joined by single hyphens, at most 60 characters
        (``section`` when nothing is left).
    """
    slug = _NOT_SLUG.sub("-", heading.lower()).strip("-")
    if len(slug) > _ANCHOR_MAX_CHARS:
        slug = slug[:_ANCHOR_MAX_CHARS].rsplit("-", 1)[0] or slug[:_ANCHOR_MAX_CHARS]
    return slug or "section"


@dataclass
class _Packer:
    """Greedy packer of sentences into passages of bounded length."""

    max_chars: int
    passages: list[Passage] = field(default_factory=list)
    heading: str = ""
    section: str | None = None
    anchor: str | None = None
    current: list[str] = field(default_factory=list)

    def start_section(self, heading: str, section: str, anchor: str | None) -> None:
        self.flush()
        self.heading = heading
        self.section = section
        self.anchor = anchor

    def add(self, sentence: str) -> None:
        room = self.max_chars - (len(self.heading) + 2 if self.heading else 0)
        for piece in _split_long(sentence, max(20, room)):
            if self.current and self._length(piece) > self.max_chars:
                self.flush()
            self.current.append(piece)

    def flush(self) -> None:
        if self.current:
            text = self._text(self.current)
            start = len(self.heading) + 2 if self.heading else 0
            self.passages.append(Passage(text, self.section, self.anchor, start))
            self.current = []

    def _length(self, piece: str) -> int:
        return len(self._text([*self.current, piece]))

    def _text(self, sentences: list[str]) -> str:
        body = " ".join(sentences)
        return f"{self.heading}: {body}" if self.heading else body


def markdown_blocks(markdown: str) -> list[tuple[str, bool]]:
    """Reduce Markdown to plain-text blocks.

    Args:
        markdown: The Markdown source.

    Returns:
        ``(text, is_heading)`` pairs in document order. Links keep their text, images
        their alt text, emphasis and code marks are dropped, HTML and code blocks are
        skipped, and each table row becomes one block with cells joined by ``", "``.
        A paragraph whose first line is entirely bold yields that line as a heading.
    """
    return [(block.text, block.heading) for block in _walk(_markdown().parse(markdown))]


def add_heading_anchors(tokens: list[Any]) -> None:
    """Give every section heading in parsed Markdown its anchor as an ``id`` attribute.

    For the article's web page: parse the body with markdown-it (any options), call this
    on the tokens, then render them. The ids are the anchors that search hits cite
    (:attr:`Passage.anchor`). A bold first line gets the id on its paragraph.

    Args:
        tokens: markdown-it tokens from ``MarkdownIt.parse``; changed in place.
    """
    for block in _walk(tokens):
        if block.heading and block.anchor and block.opener is not None:
            tokens[block.opener].attrSet("id", block.anchor)


def _walk(tokens: list[Any]) -> list[_Block]:
    """Reduce markdown-it tokens to plain-text blocks, numbering the headings' anchors."""
    blocks: list[_Block] = []
    anchors: dict[str, int] = {}
    in_heading = False
    opener: int | None = None
    row: list[str] | None = None

    def heading_block(text: str) -> _Block:
        slug = section_anchor(text)
        anchors[slug] = anchors.get(slug, 0) + 1
        anchor = slug if anchors[slug] == 1 else f"{slug}-{anchors[slug]}"
        return _Block(text, heading=True, anchor=anchor, opener=opener)

    for number, token in enumerate(tokens):
        if token.type == "heading_open":
            in_heading, opener = True, number
        elif token.type == "heading_close":
            in_heading = False
        elif token.type == "paragraph_open":
            opener = number
        elif token.type == "tr_open":
            row = []
        elif token.type == "tr_close":
            if row:
                blocks.append(_Block(", ".join(cell for cell in row if cell)))
            row = None
        elif token.type == "inline":
            children = [c for c in token.children or [] if c.type != "text" or c.content]
            lead = _bold_lead(children) if row is None and not in_heading else None
            if lead is not None:
                heading, children = lead
                blocks.append(heading_block(heading))
            text = _inline_text(children)
            if not text:
                continue
            if row is not None:
                row.append(text)
            elif in_heading:
                blocks.append(heading_block(text))
            else:
                blocks.append(_Block(text))
    return blocks


def _bold_lead(children: list[Any]) -> tuple[str, list[Any]] | None:
    """Split off a paragraph's first line if it is entirely bold (a pseudo-heading).

    Editors often write ``**When the clock starts**`` on its own line above the text.
    """
    if len(children) < 3 or children[0].type != "strong_open":
        return None
    try:
        close = next(i for i, child in enumerate(children) if child.type == "strong_close")
    except StopIteration:
        return None
    rest = children[close + 1 :]
    if rest and rest[0].type not in {"softbreak", "hardbreak"}:
        return None
    heading = _inline_text(children[1:close]).rstrip(":")
    return (heading, rest[1:]) if heading else None


def _inline_text(children: list[Any]) -> str:
    parts: list[str] = []
    for child in children:
        if child.type in {"text", "code_inline"}:
            parts.append(child.content)
        elif child.type in {"softbreak", "hardbreak"}:
            parts.append(" ")
        elif child.type == "image":
            parts.append(child.content or "")
    return _SPACES.sub(" ", "".join(parts)).strip()


def strip_markdown(markdown: str) -> str:
    """Return Markdown as one line of plain text (e.g. a summary for a plain-text channel).

    Args:
        markdown: The Markdown source.

    Returns:
        The text of every block, joined by spaces.
    """
    return " ".join(text for text, _ in markdown_blocks(markdown))


def chunk_markdown(markdown: str, max_chars: int = DEFAULT_MAX_CHARS) -> list[str]:
    """Turn Markdown into plain-text passages of at most ``max_chars`` characters.

    Args:
        markdown: The Markdown source.
        max_chars: Longest passage (a heading prefix counts towards it).

    Returns:
        The passages in document order, without duplicates.

    Raises:
        ValueError: If ``max_chars`` is too small to hold a useful passage.
    """
    return [passage.text for passage in chunk_passages(markdown, max_chars)]


def chunk_passages(markdown: str, max_chars: int = DEFAULT_MAX_CHARS) -> list[Passage]:
    """Like :func:`chunk_markdown`, with the section each passage belongs to.

    Args:
        markdown: The Markdown source.
        max_chars: Longest passage (a heading prefix counts towards it).

    Returns:
        The passages in document order; a repeated text is kept once (its first place).

    Raises:
        ValueError: If ``max_chars`` is too small to hold a useful passage.
    """
    if max_chars < 40:
        raise ValueError("max_chars must be at least 40")
    packer = _Packer(max_chars=max_chars)
    for block in _walk(_markdown().parse(markdown)):
        text = block.text
        if block.heading:
            packer.start_section(_short_heading(text, max_chars), text, block.anchor)
            continue
        if not text.endswith(_TERMINATORS):  # list items and table rows: keep them apart
            text += "."
        for sentence in split_sentences(text):
            packer.add(sentence)
    packer.flush()
    unique: dict[str, Passage] = {}
    for passage in packer.passages:
        unique.setdefault(passage.text, passage)
    return list(unique.values())


def _short_heading(heading: str, max_chars: int) -> str:
    limit = max_chars // 4
    return heading if len(heading) <= limit else heading[:limit].rsplit(" ", 1)[0]


def _split_long(sentence: str, limit: int) -> list[str]:
    """Split a sentence longer than ``limit`` characters at word boundaries."""
    if len(sentence) <= limit:
        return [sentence]
    pieces: list[str] = []
    words: list[str] = []
    for word in sentence.split(" "):
        if words and len(" ".join([*words, word])) > limit:
            pieces.append(" ".join(words))
            words = []
        words.append(word[:limit])
    if words:
        pieces.append(" ".join(words))
    return pieces


def chunk_article(article: Article, max_chars: int = DEFAULT_MAX_CHARS) -> list[str]:
    """Return the plain-text passages of an article's body.

    Args:
        article: The article.
        max_chars: Longest passage.

    Returns:
        The passages in document order.
    """
    return chunk_markdown(article.body, max_chars=max_chars)


def chunk_article_passages(article: Article, max_chars: int = DEFAULT_MAX_CHARS) -> list[Passage]:
    """Return the passages of an article's body with their sections (see :class:`Passage`).

    Args:
        article: The article.
        max_chars: Longest passage.

    Returns:
        The passages in document order.
    """
    return chunk_passages(article.body, max_chars=max_chars)
