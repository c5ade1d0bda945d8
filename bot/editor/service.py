"""Articles and revisions in the app database: save, review, roll back, retire, import, export.

Every function takes an open session and keyword-only arguments, commits its own change
together with an audit event (``kb.saved``, ``kb.submitted``, ``kb.approved``,
``kb.rejected``, ``kb.rolled_back``, ``kb.retired``, ``kb.restored``, ``kb.imported``), and
raises :class:`bot.editor.errors.EditorError` subclasses with one sentence for the editor.

Content is validated by the knowledge library (:func:`knowledge.articles.parse_article`
on the Markdown the revision would export to), so the browser shows exactly the problems
``kb validate`` would. Rules:

* Saving creates revision ``n+1`` (identical content saves nothing: a double click is one
  save); older unpublished revisions of the article become ``superseded``.
* When the knowledge base requires review, only ``approved`` revisions are published; an
  editor submits, a lead or admin approves or rejects with a comment, never their own.
* A rollback is a new revision with an old revision's content: history is never rewritten.
* Retiring takes the article out of the live index on the next publish; restoring puts
  its last published (or newest publishable) revision back.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

import bot.db.models  # noqa: F401  (every table must be mapped before the first query)
from bot.agents.models import Role
from bot.audit.service import record_event
from bot.db.base import utcnow
from bot.editor.errors import (
    ArticleExistsError,
    ArticleNotFoundError,
    InvalidArticleError,
    ReviewError,
    StaleRevisionError,
)
from bot.editor.markdown import article_markdown
from bot.editor.models import KbArticle, KbRevision, KbWorkingCopy, RevisionState
from knowledge.articles import (
    AUDIENCES,
    MAX_BODY_CHARS,
    MAX_QUESTION_CHARS,
    MAX_QUESTIONS,
    MAX_TITLE_CHARS,
    OUT_OF_SCOPE_TAG,
    Article,
    ArticleError,
    is_valid_id,
    parse_article,
    scan_articles,
)

logger = logging.getLogger(__name__)

# The article limits are the knowledge library's (MAX_BODY_CHARS, MAX_TITLE_CHARS,
# MAX_QUESTIONS, MAX_QUESTION_CHARS); these are the editor's own for fields it has no
# limit on, checked first so a huge field is refused before any file is written.
MAX_ID_CHARS = 120
MAX_TAGS = 30
MAX_SHORT_FIELD_CHARS = 100
MAX_NOTE_CHARS = 500
MAX_COMMENT_CHARS = 2000

EDITOR_ROLES: tuple[str, ...] = (Role.EDITOR.value, Role.LEAD.value, Role.ADMIN.value)
REVIEWER_ROLES: tuple[str, ...] = (Role.LEAD.value, Role.ADMIN.value)
OPEN_STATES = (
    RevisionState.DRAFT.value,
    RevisionState.IN_REVIEW.value,
    RevisionState.APPROVED.value,
)


@dataclass(frozen=True)
class Actor:
    """Who acts: a desk user in the browser, or someone at the command line.

    Attributes:
        agent_id: The desk user's id (``None`` at the command line).
        name: Shown as the revision's author.
        role: A :class:`bot.agents.models.Role` value.
        audit: The audit log's actor, e.g. ``agent:7`` or ``cli``.
    """

    agent_id: int | None
    name: str
    role: str
    audit: str

    @classmethod
    def for_agent(cls, agent: Any) -> Actor:
        """The actor for a signed-in :class:`bot.agents.models.Agent`."""
        return cls(agent.id, agent.name, agent.role, f"agent:{agent.id}")

    @classmethod
    def command_line(cls, name: str = "command line") -> Actor:
        """The actor for ``python -m bot kb ...`` (acts with every right)."""
        return cls(None, name, Role.ADMIN.value, "cli")


@dataclass(frozen=True)
class ArticleView:
    """An article as the list shows it: its newest revision and where it stands."""

    id: str
    title: str
    audience: str
    owner: str
    retired: bool
    in_live_build: bool
    latest_number: int
    latest_state: str
    latest_author: str
    updated_at: dt.datetime
    pending: str | None  # "new", "update", "retire", "restore" or None
    out_of_scope: bool = False  # lists questions to decline (OUT_OF_SCOPE_TAG)


@dataclass(frozen=True)
class LiveEntry:
    """An article of the set a publish would put live, and the revision it comes from."""

    article: Article
    revision_id: int
    revision_number: int


# -- content ---------------------------------------------------------------------------------


def _clean_lines(values: Iterable[str]) -> list[str]:
    return [value.strip() for value in values if value and value.strip()]


def content_from_fields(
    fields: Mapping[str, Any], *, today: dt.date | None = None
) -> dict[str, Any]:
    """Turn the edit form's fields into revision content (not yet validated).

    Args:
        fields: ``id``, ``title``, ``audience``, ``owner``, ``questions`` (a list, or one
            question per line), ``tags`` (a list or comma-separated), ``language``,
            ``body``.
        today: The ``updated`` date (default: today, UTC).

    Returns:
        Content in the shape of :meth:`knowledge.articles.Article.canonical_content`.
    """

    def text(name: str, default: str = "") -> str:
        value = fields.get(name, default)
        return value if isinstance(value, str) else default

    def listing(name: str, separator: str) -> list[str]:
        value = fields.get(name, [])
        if isinstance(value, str):
            return _clean_lines(value.split(separator))
        if isinstance(value, list | tuple):
            return _clean_lines(str(item) for item in value if isinstance(item, str))
        return []

    day = today or utcnow().date()
    return {
        "id": text("id").strip(),
        "title": " ".join(text("title").split()),
        "audience": text("audience", "all").strip(),
        "tags": listing("tags", ","),
        "questions": listing("questions", "\n"),
        "language": text("language", "en").strip() or "en",
        "updated": day.isoformat(),
        "owner": text("owner").strip(),
        "body": text("body").replace("\r\n", "\n").replace("\r", "\n").strip(),
    }


def _limit_problems(content: Mapping[str, Any]) -> list[tuple[str | None, str]]:
    problems: list[tuple[str | None, str]] = []
    checks = (
        ("id", MAX_ID_CHARS),
        ("title", MAX_TITLE_CHARS),
        ("owner", MAX_SHORT_FIELD_CHARS),
        ("language", MAX_SHORT_FIELD_CHARS),
        ("body", MAX_BODY_CHARS),
    )
    for name, limit in checks:
        value = str(content.get(name, ""))
        if len(value) > limit:
            problems.append((name, f"is {len(value):,} characters long; the limit is {limit:,}"))
    questions = list(content.get("questions", []))
    if len(questions) > MAX_QUESTIONS:
        problems.append(
            ("questions", f"has {len(questions)} entries; the limit is {MAX_QUESTIONS}")
        )
    for number, question in enumerate(questions, start=1):
        if len(question) > MAX_QUESTION_CHARS:
            problems.append(
                ("questions", f"item {number} is longer than {MAX_QUESTION_CHARS} characters")
            )
    if len(list(content.get("tags", []))) > MAX_TAGS:
        problems.append(("tags", f"more than {MAX_TAGS} tags"))
    if content.get("audience") not in AUDIENCES:
        problems.append(("audience", f"must be one of {', '.join(AUDIENCES)}"))
    return problems


def validate_content(content: Mapping[str, Any]) -> Article:
    """Validate revision content with the knowledge library, as ``kb validate`` would.

    The content is written as the Markdown file it would export to and read back with
    :func:`knowledge.articles.parse_article`, so the problems are the CLI's own.

    Args:
        content: From :func:`content_from_fields` or a stored revision.

    Returns:
        The article.

    Raises:
        InvalidArticleError: Listing every problem by field.
    """
    problems = _limit_problems(content)
    article_id = str(content.get("id", ""))
    if problems:
        raise InvalidArticleError(_summary(problems), article_id=article_id, problems=problems)
    if not is_valid_id(article_id):
        problems = [
            (
                "id",
                "use lowercase letters, digits and single hyphens, e.g. 'returns-label-lost'",
            )
        ]
        raise InvalidArticleError(_summary(problems), article_id=article_id, problems=problems)
    with tempfile.TemporaryDirectory(prefix="kb-validate-") as folder:
        path = Path(folder) / f"{article_id}.md"
        path.write_text(_raw_markdown(content), encoding="utf-8")
        try:
            article = parse_article(path)
        except ArticleError as exc:
            found = [(problem.field, problem.message) for problem in exc.problems]
            raise InvalidArticleError(
                _summary(found), article_id=article_id, problems=found
            ) from exc
    return article.model_copy(update={"path": None})


def _raw_markdown(content: Mapping[str, Any]) -> str:
    """Markdown for unvalidated content (quoted YAML, so any text survives)."""
    import yaml

    front = {
        "id": content.get("id", ""),
        "title": content.get("title", ""),
        "audience": content.get("audience", ""),
        "tags": list(content.get("tags", [])),
        "questions": list(content.get("questions", [])),
        "language": content.get("language", ""),
        "updated": dt.date.fromisoformat(str(content.get("updated"))),
        "owner": content.get("owner", ""),
    }
    text = yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=10_000)
    return f"---\n{text}---\n{content.get('body', '')}\n"


def _summary(problems: Sequence[tuple[str | None, str]]) -> str:
    count = len(problems)
    first_field, first_message = problems[0]
    more = f" (and {count - 1} more)" if count > 1 else ""
    where = f"{first_field}: " if first_field else ""
    return f"The article can't be saved: {where}{first_message}{more}."


def revision_article(revision: KbRevision) -> Article:
    """The validated article of a stored revision."""
    return Article.model_validate(revision.content)


# -- queries ---------------------------------------------------------------------------------


def get_article(session: Session, article_id: str) -> KbArticle:
    """Return an article row.

    Raises:
        ArticleNotFoundError: No such article (ids that are not slugs included).
    """
    if len(article_id) > MAX_ID_CHARS or not is_valid_id(article_id):
        raise ArticleNotFoundError("There is no such article.", article_id=article_id[:200])
    row = session.get(KbArticle, article_id)
    if row is None:
        raise ArticleNotFoundError("There is no such article.", article_id=article_id)
    return row


def revisions_of(session: Session, article_id: str) -> list[KbRevision]:
    """Every revision of an article, newest first."""
    return list(
        session.scalars(
            select(KbRevision)
            .where(KbRevision.article_id == article_id)
            .order_by(KbRevision.number.desc())
        )
    )


def latest_revision(session: Session, article_id: str) -> KbRevision:
    """The newest revision of an article.

    Raises:
        ArticleNotFoundError: The article has no revisions (or does not exist).
    """
    revision = session.scalars(
        select(KbRevision)
        .where(KbRevision.article_id == article_id)
        .order_by(KbRevision.number.desc())
        .limit(1)
    ).first()
    if revision is None:
        raise ArticleNotFoundError("There is no such article.", article_id=article_id)
    return revision


def get_revision(session: Session, article_id: str, number: int) -> KbRevision:
    """One revision by its number.

    Raises:
        ArticleNotFoundError: No such article or revision.
    """
    get_article(session, article_id)
    revision = session.scalars(
        select(KbRevision).where(KbRevision.article_id == article_id, KbRevision.number == number)
    ).first()
    if revision is None:
        raise ArticleNotFoundError(
            f"Article {article_id} has no revision {number}.", article_id=article_id
        )
    return revision


def publishable_states(*, require_review: bool) -> tuple[str, ...]:
    """The states a newest revision may be in to be published."""
    if require_review:
        return (RevisionState.APPROVED.value,)
    return OPEN_STATES


def _latest_by_article(session: Session) -> dict[str, KbRevision]:
    newest = (
        select(KbRevision.article_id, func.max(KbRevision.number).label("number"))
        .group_by(KbRevision.article_id)
        .subquery()
    )
    rows = session.scalars(
        select(KbRevision).join(
            newest,
            (KbRevision.article_id == newest.c.article_id) & (KbRevision.number == newest.c.number),
        )
    )
    return {row.article_id: row for row in rows}


def _pending(article: KbArticle, latest: KbRevision | None, *, require_review: bool) -> str | None:
    candidate = latest is not None and latest.state in publishable_states(
        require_review=require_review
    )
    if article.retired:
        return "retire" if article.in_live_build else None
    if candidate:
        return "update" if article.in_live_build else "new"
    if article.published_revision_id is not None and not article.in_live_build:
        return "restore"
    return None


def list_articles(
    session: Session,
    *,
    require_review: bool,
    query: str = "",
    audience: str = "",
    state: str = "",
) -> list[ArticleView]:
    """The articles for the list page, filtered and sorted by title.

    Args:
        session: The open session.
        require_review: Whether publishing needs approval (decides what is pending).
        query: Words that must all appear in the id, title, questions or body.
        audience: ``b2c``, ``b2b`` or ``all`` (empty: any).
        state: A revision state of the newest revision, ``retired``, ``live`` or
            ``pending`` (empty: any).

    Returns:
        The matching articles.
    """
    latest = _latest_by_article(session)
    words = query.lower().split()[:20]
    views = []
    for article in session.scalars(select(KbArticle)):
        revision = latest.get(article.id)
        if revision is None:
            continue
        content = revision.content
        haystack = " ".join(
            [article.id, content["title"], *content.get("questions", []), content["body"]]
        ).lower()
        if any(word not in haystack for word in words):
            continue
        if audience and content["audience"] != audience:
            continue
        pending = _pending(article, revision, require_review=require_review)
        view = ArticleView(
            id=article.id,
            title=content["title"],
            audience=content["audience"],
            owner=content["owner"],
            retired=article.retired,
            in_live_build=article.in_live_build,
            latest_number=revision.number,
            latest_state=revision.state,
            latest_author=revision.author_name,
            updated_at=revision.created_at,
            out_of_scope=OUT_OF_SCOPE_TAG in content.get("tags", []),
            pending=pending,
        )
        if state and not _state_matches(view, state):
            continue
        views.append(view)
    return sorted(views, key=lambda view: (view.title.lower(), view.id))


def _state_matches(view: ArticleView, state: str) -> bool:
    if state == "retired":
        return view.retired
    if state == "live":
        return view.in_live_build
    if state == "pending":
        return view.pending is not None
    return view.latest_state == state


def pending_changes(session: Session, *, require_review: bool) -> list[tuple[str, str]]:
    """What the next publish would change: ``(article_id, kind)`` sorted by id."""
    latest = _latest_by_article(session)
    changes = []
    for article in session.scalars(select(KbArticle).order_by(KbArticle.id)):
        kind = _pending(article, latest.get(article.id), require_review=require_review)
        if kind is not None:
            changes.append((article.id, kind))
    return changes


def live_set(session: Session, *, require_review: bool) -> list[LiveEntry]:
    """The articles a publish would put live now, each from the revision chosen.

    Per article that is not retired: its newest revision if publishable, otherwise the
    revision last published (if any).
    """
    latest = _latest_by_article(session)
    allowed = publishable_states(require_review=require_review)
    entries = []
    for article in session.scalars(select(KbArticle).order_by(KbArticle.id)):
        if article.retired:
            continue
        revision = latest.get(article.id)
        if revision is None or revision.state not in allowed:
            revision = (
                session.get(KbRevision, article.published_revision_id)
                if article.published_revision_id is not None
                else None
            )
        if revision is None:
            continue
        entries.append(LiveEntry(revision_article(revision), revision.id, revision.number))
    return entries


def published_set(session: Session) -> list[LiveEntry]:
    """The articles of the live build, each from the revision it was published from.

    Unlike :func:`live_set`, saved but unpublished revisions are left out: this is what
    the bot answers with now.
    """
    entries = []
    rows = session.scalars(
        select(KbArticle).where(KbArticle.in_live_build.is_(True)).order_by(KbArticle.id)
    )
    for row in rows:
        if row.published_revision_id is None:
            continue
        revision = session.get(KbRevision, row.published_revision_id)
        if revision is not None:
            entries.append(LiveEntry(revision_article(revision), revision.id, revision.number))
    return entries


def published_article(session: Session, article_id: str) -> Article | None:
    """The live text of an article (what the bot answers with), or ``None``.

    Args:
        session: The open session.
        article_id: Untrusted id (from a URL).

    Returns:
        The revision in the live build, or ``None`` if the article is not live (unknown,
        retired, or never published).
    """
    if len(article_id) > MAX_ID_CHARS or not is_valid_id(article_id):
        return None
    row = session.get(KbArticle, article_id)
    if row is None or not row.in_live_build or row.published_revision_id is None:
        return None
    revision = session.get(KbRevision, row.published_revision_id)
    return None if revision is None else revision_article(revision)


def review_queue(session: Session) -> list[KbRevision]:
    """Revisions waiting for a lead, oldest first."""
    return list(
        session.scalars(
            select(KbRevision)
            .where(KbRevision.state == RevisionState.IN_REVIEW.value)
            .order_by(KbRevision.created_at)
        )
    )


# -- changes ---------------------------------------------------------------------------------


def _require_editor(actor: Actor) -> None:
    if actor.role not in EDITOR_ROLES:
        raise ReviewError("Your role can't edit articles.")


def _supersede_open(session: Session, article_id: str) -> None:
    for revision in session.scalars(
        select(KbRevision).where(
            KbRevision.article_id == article_id, KbRevision.state.in_(OPEN_STATES)
        )
    ):
        revision.state = RevisionState.SUPERSEDED.value


def _add_revision(
    session: Session,
    article: KbArticle,
    content: dict[str, Any],
    *,
    actor: Actor,
    note: str,
    state: str = RevisionState.DRAFT.value,
) -> KbRevision:
    number = (
        session.scalar(
            select(func.max(KbRevision.number)).where(KbRevision.article_id == article.id)
        )
        or 0
    ) + 1
    _supersede_open(session, article.id)
    revision = KbRevision(
        article_id=article.id,
        number=number,
        author_id=actor.agent_id,
        author_name=actor.name[:200],
        content=content,
        note=note[:MAX_NOTE_CHARS],
        state=state,
        review_comment="",
    )
    session.add(revision)
    article.updated_at = utcnow()
    return revision


def create_article(
    session: Session, *, content: Mapping[str, Any], actor: Actor, note: str = ""
) -> KbRevision:
    """Create an article with its first revision (a draft).

    Raises:
        InvalidArticleError: The content does not validate.
        ArticleExistsError: The id is taken (retired articles included).
    """
    _require_editor(actor)
    article = validate_content(content)
    if session.get(KbArticle, article.id) is not None:
        raise ArticleExistsError(
            f"An article with the id {article.id!r} already exists; choose another id "
            "or edit that article.",
            article_id=article.id,
            problems=[("id", "already used by another article")],
        )
    row = KbArticle(id=article.id, retired=False, in_live_build=False, created_by=actor.agent_id)
    session.add(row)
    session.flush()
    revision = _add_revision(
        session, row, article.canonical_content(), actor=actor, note=note or "created"
    )
    session.flush()
    record_event(
        session,
        actor=actor.audit,
        action="kb.saved",
        details={"article_id": article.id, "revision": revision.number, "created": True},
    )
    _discard_working_copy(session, actor, "new")
    session.commit()
    logger.info("kb article created article=%s by=%s", article.id, actor.audit)
    return revision


def save_revision(
    session: Session,
    *,
    article_id: str,
    content: Mapping[str, Any],
    actor: Actor,
    base_number: int | None = None,
    note: str = "",
) -> KbRevision:
    """Save a new revision of an existing article.

    Args:
        session: The open session (committed here).
        article_id: The article (from the URL; the content's id must match).
        content: The form's content.
        actor: Who saves.
        base_number: The revision the form was opened on; if a newer one exists the save
            is refused (the editor's text stays in the form and the working copy).
        note: What changed, for the history.

    Returns:
        The new revision, or the newest one when the content is identical to it.

    Raises:
        ArticleNotFoundError: No such article.
        InvalidArticleError: The content does not validate or changes the id.
        StaleRevisionError: Someone saved a newer revision meanwhile.
    """
    _require_editor(actor)
    row = get_article(session, article_id)
    article = validate_content(content)
    if article.id != article_id:
        problems = [("id", "can't be changed; create a new article and retire this one")]
        raise InvalidArticleError(_summary(problems), article_id=article_id, problems=problems)
    latest = latest_revision(session, article_id)
    if base_number is not None and latest.number != base_number:
        raise StaleRevisionError(
            f"{latest.author_name or 'Someone'} saved revision {latest.number} since you "
            f"opened revision {base_number}. Your text is kept here; copy what you need, "
            "then reload to edit the newest revision.",
            article_id=article_id,
        )
    new_content = article.canonical_content()
    if _same_content(new_content, latest.content):
        _discard_working_copy(session, actor, article_id)
        session.commit()
        return latest
    revision = _add_revision(session, row, new_content, actor=actor, note=note)
    session.flush()
    record_event(
        session,
        actor=actor.audit,
        action="kb.saved",
        details={"article_id": article_id, "revision": revision.number},
    )
    _discard_working_copy(session, actor, article_id)
    session.commit()
    logger.info("kb revision saved article=%s revision=%s", article_id, revision.number)
    return revision


def _same_content(left: Mapping[str, Any], right: Mapping[str, Any]) -> bool:
    ignore = {"updated"}
    return {k: v for k, v in left.items() if k not in ignore} == {
        k: v for k, v in right.items() if k not in ignore
    }


def submit_for_review(
    session: Session, *, article_id: str, number: int, actor: Actor
) -> KbRevision:
    """Ask a lead to review a draft.

    Raises:
        ArticleNotFoundError: No such revision.
        ReviewError: The revision is not the newest draft.
    """
    _require_editor(actor)
    revision = get_revision(session, article_id, number)
    if revision.state != RevisionState.DRAFT.value:
        raise ReviewError(
            f"Revision {number} is {revision.state.replace('_', ' ')}; only a draft can be "
            "submitted for review.",
            article_id=article_id,
        )
    revision.state = RevisionState.IN_REVIEW.value
    record_event(
        session,
        actor=actor.audit,
        action="kb.submitted",
        details={"article_id": article_id, "revision": number},
    )
    session.commit()
    return revision


def review_revision(
    session: Session,
    *,
    article_id: str,
    number: int,
    actor: Actor,
    approve: bool,
    comment: str = "",
) -> KbRevision:
    """Approve or reject a revision in review.

    Raises:
        ArticleNotFoundError: No such revision.
        ReviewError: The actor is not a lead or admin, wrote the revision, the revision
            is not in review, or a rejection has no comment.
    """
    if actor.role not in REVIEWER_ROLES:
        raise ReviewError("Only a lead or an admin can review articles.", article_id=article_id)
    revision = get_revision(session, article_id, number)
    if actor.agent_id is not None and revision.author_id == actor.agent_id:
        raise ReviewError(
            "You wrote this revision; another lead has to review it.", article_id=article_id
        )
    if revision.state not in (RevisionState.IN_REVIEW.value, RevisionState.DRAFT.value):
        raise ReviewError(
            f"Revision {number} is {revision.state.replace('_', ' ')}; it can't be reviewed.",
            article_id=article_id,
        )
    comment = comment.strip()[:MAX_COMMENT_CHARS]
    if not approve and not comment:
        raise ReviewError("Say why you reject it, so the editor can fix it.", article_id=article_id)
    revision.state = (RevisionState.APPROVED if approve else RevisionState.REJECTED).value
    revision.reviewer_id = actor.agent_id
    revision.reviewed_at = utcnow()
    revision.review_comment = comment
    record_event(
        session,
        actor=actor.audit,
        action="kb.approved" if approve else "kb.rejected",
        details={"article_id": article_id, "revision": number},
    )
    session.commit()
    return revision


def rollback(session: Session, *, article_id: str, number: int, actor: Actor) -> KbRevision:
    """Create a new revision with the content of revision ``number``.

    Raises:
        ArticleNotFoundError: No such revision.
    """
    _require_editor(actor)
    row = get_article(session, article_id)
    old = get_revision(session, article_id, number)
    content = dict(old.content)
    content["updated"] = utcnow().date().isoformat()
    validate_content(content)
    revision = _add_revision(
        session, row, content, actor=actor, note=f"rollback to revision {number}"
    )
    session.flush()
    record_event(
        session,
        actor=actor.audit,
        action="kb.rolled_back",
        details={"article_id": article_id, "to": number, "revision": revision.number},
    )
    session.commit()
    return revision


def set_retired(session: Session, *, article_id: str, actor: Actor, retired: bool) -> KbArticle:
    """Retire an article (it leaves the live index on publish) or restore it."""
    _require_editor(actor)
    row = get_article(session, article_id)
    if row.retired == retired:
        return row
    row.retired = retired
    row.updated_at = utcnow()
    record_event(
        session,
        actor=actor.audit,
        action="kb.retired" if retired else "kb.restored",
        details={"article_id": article_id},
    )
    session.commit()
    return row


# -- working copies (autosave) -----------------------------------------------------------------


def save_working_copy(
    session: Session,
    *,
    actor: Actor,
    key: str,
    data: Mapping[str, Any],
    base_revision: int | None,
) -> KbWorkingCopy:
    """Keep an editor's unsaved form (one per editor and article; ``key`` ``new`` for new).

    Raises:
        ArticleNotFoundError: ``key`` names no article.
        InvalidArticleError: The form is far too large to keep.
    """
    if actor.agent_id is None:
        raise ReviewError("Only a signed-in editor has working copies.")
    if key != "new":
        get_article(session, key)
    kept = {name: data.get(name) for name in _FORM_FIELDS if name in data}
    size = sum(len(value) for value in kept.values() if isinstance(value, str))
    if size > 2 * MAX_BODY_CHARS + 10_000:  # room to trim an over-long text, not more
        raise InvalidArticleError(
            f"The text is longer than {MAX_BODY_CHARS:,} characters; shorten it.", article_id=key
        )
    row = session.scalars(
        select(KbWorkingCopy).where(
            KbWorkingCopy.agent_id == actor.agent_id, KbWorkingCopy.key == key
        )
    ).first()
    if row is None:
        row = KbWorkingCopy(agent_id=actor.agent_id, key=key, data=kept)
        session.add(row)
    row.data = kept
    row.base_revision = base_revision
    row.updated_at = utcnow()
    session.commit()
    return row


_FORM_FIELDS = ("id", "title", "audience", "owner", "questions", "tags", "language", "body", "note")


def get_working_copy(session: Session, *, agent_id: int, key: str) -> KbWorkingCopy | None:
    """An editor's kept form for an article (or ``new``), if any."""
    return session.scalars(
        select(KbWorkingCopy).where(KbWorkingCopy.agent_id == agent_id, KbWorkingCopy.key == key)
    ).first()


def _discard_working_copy(session: Session, actor: Actor, key: str) -> None:
    if actor.agent_id is None:
        return
    row = get_working_copy(session, agent_id=actor.agent_id, key=key)
    if row is not None:
        session.delete(row)


def discard_working_copy(session: Session, *, actor: Actor, key: str) -> None:
    """Throw an editor's kept form away."""
    _discard_working_copy(session, actor, key)
    session.commit()


# -- import / export ----------------------------------------------------------------------------


def import_articles(session: Session, directory: Path, *, actor: Actor) -> int:
    """Load Markdown articles into empty editor tables (set-up's seed content).

    Each article gets revision 1, marked as the published revision (not yet in a live
    build, so the next publish puts every one live).

    Args:
        session: The open session (committed here).
        directory: The articles folder.
        actor: Who imports.

    Returns:
        How many articles were imported (0 when the tables already hold articles).

    Raises:
        InvalidArticleError: Some files are invalid; nothing is imported.
    """
    if session.scalar(select(func.count()).select_from(KbArticle)):
        return 0
    articles, problems = scan_articles(Path(directory))
    if problems:
        found = [
            (f"{problem.path.name}: {problem.field or '-'}", problem.message)
            for problem in problems
        ]
        raise InvalidArticleError(_summary(found), problems=found)
    for article in articles:
        row = KbArticle(id=article.id, retired=False, in_live_build=False)
        session.add(row)
        session.flush()
        revision = _add_revision(
            session,
            row,
            article.canonical_content(),
            actor=actor,
            note=f"imported from {Path(directory).name}",
            state=RevisionState.PUBLISHED.value,
        )
        session.flush()
        row.published_revision_id = revision.id
    record_event(
        session,
        actor=actor.audit,
        action="kb.imported",
        details={"count": len(articles), "directory": str(directory)},
    )
    session.commit()
    return len(articles)


def export_articles(session: Session, directory: Path) -> list[Path]:
    """Write the articles of the live build as Markdown files (``kb build`` reads them).

    Args:
        session: The open session.
        directory: Target folder (created; existing ``<id>.md`` files are replaced).

    Returns:
        The files written, sorted.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for entry in published_set(session):
        path = directory / f"{entry.article.id}.md"
        path.write_text(article_markdown(entry.article), encoding="utf-8")
        written.append(path)
    return written
