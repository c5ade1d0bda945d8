"""Knowledge-base article pages, linked from citations in the chat."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from markdown_it import MarkdownIt
from starlette.concurrency import run_in_threadpool

from bot.web.deps import SettingsDep, TemplatesDep
from bot.web.errors import ArticleNotFoundError
from knowledge.articles import Article, ArticleError, find_article_files, parse_article
from knowledge.chunking import add_heading_anchors

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/articles", tags=["articles"])

ARTICLE_ID_PATTERN = re.compile(r"^[a-z0-9-]+$")
MAX_ARTICLE_ID_CHARS = 120


def article_path(articles_dir: Path, article_id: str) -> Path | None:
    """Return the file of an article, looking in sub-folders too.

    Args:
        articles_dir: The articles folder.
        article_id: An id already checked against ``ARTICLE_ID_PATTERN``.

    Returns:
        The file inside ``articles_dir``, or ``None`` if there is none.
    """
    root = articles_dir.resolve()
    direct = root / f"{article_id}.md"
    candidates = [direct] if direct.is_file() else []
    if not candidates and root.is_dir():
        candidates = [p for p in find_article_files(root) if p.stem == article_id]
    for path in candidates:
        if path.resolve().is_relative_to(root):
            return path
    return None


def load_article(articles_dir: Path, article_id: str) -> Article:
    """Read and validate an article by id.

    Args:
        articles_dir: The articles folder.
        article_id: The requested id (untrusted).

    Returns:
        The article.

    Raises:
        ArticleNotFoundError: If the id is malformed, there is no such file, or the
            file is not a valid article.
    """
    if len(article_id) > MAX_ARTICLE_ID_CHARS or not ARTICLE_ID_PATTERN.fullmatch(article_id):
        raise ArticleNotFoundError(article_id)
    path = article_path(articles_dir, article_id)
    if path is None:
        raise ArticleNotFoundError(article_id)
    try:
        return parse_article(path)
    except ArticleError as exc:
        logger.error("article %r is invalid: %s", article_id, exc.message)
        raise ArticleNotFoundError(article_id) from exc


def render_markdown(body: str) -> str:
    """Render article Markdown to HTML; raw HTML in the source is escaped, not passed on.

    Every section heading (and a paragraph whose first line is entirely bold) gets the
    ``id`` that the bot's citations link to (``/articles/<id>#<anchor>``), from
    :func:`knowledge.chunking.add_heading_anchors`. Tables render as tables.

    Args:
        body: CommonMark text.

    Returns:
        Safe HTML.
    """
    markdown = MarkdownIt("commonmark", {"html": False}).enable("table").enable("strikethrough")
    tokens = markdown.parse(body)
    add_heading_anchors(tokens)
    html: str = markdown.renderer.render(tokens, markdown.options, {})
    return html


@router.get("/{article_id}", response_class=HTMLResponse)
async def show_article(
    article_id: str, request: Request, settings: SettingsDep, templates: TemplatesDep
) -> HTMLResponse:
    """Show one article as a web page (404 page if it does not exist).

    The live text comes from the knowledge editor's database (what the bot answers with);
    the articles folder is the fallback for a database that holds no articles yet.
    """
    article = await run_in_threadpool(_live_article, request, settings.articles_dir, article_id)
    return templates.TemplateResponse(
        request,
        "article.html",
        {"article": article, "body_html": render_markdown(article.body)},
    )


def _live_article(request: Request, articles_dir: Path, article_id: str) -> Article:
    """The published article (or the folder's), never an out-of-scope one.

    An out-of-scope article is a list of questions to decline, not a page for customers.
    """
    article = _published_or_folder_article(request, articles_dir, article_id)
    if article.out_of_scope:
        raise ArticleNotFoundError(article_id)
    return article


def _published_or_folder_article(request: Request, articles_dir: Path, article_id: str) -> Article:
    from bot.editor.cli import database_has_articles_in
    from bot.editor.service import published_article

    factory = request.app.state.session_factory
    with factory() as session:
        if database_has_articles_in(session):
            article = published_article(session, article_id)
            if article is None:
                raise ArticleNotFoundError(article_id)
            return article
    return load_article(articles_dir, article_id)
