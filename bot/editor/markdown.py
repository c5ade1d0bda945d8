"""Articles as Markdown files with front matter: the seed content and the export format.

:func:`article_markdown` writes what :func:`knowledge.articles.parse_article` reads back
to the same article (``kb import`` → database → ``kb export`` is lossless).
"""

from __future__ import annotations

from typing import Any

import yaml

from knowledge.articles import FRONT_MATTER_FIELDS, Article


def article_markdown(article: Article) -> str:
    """Return the file text of an article: YAML front matter, then the Markdown body.

    Args:
        article: A validated article.

    Returns:
        Text that parses back to an equal article (file path aside).
    """
    content = article.canonical_content()
    front: dict[str, Any] = {name: content[name] for name in FRONT_MATTER_FIELDS}
    front["updated"] = article.updated  # a date, not a string, so YAML writes 2026-10-14
    text = yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=10_000)
    return f"---\n{text}---\n{article.body}\n"
