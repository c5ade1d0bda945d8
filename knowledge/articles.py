"""Knowledge-base articles: Markdown files with YAML front matter.

An article lives in ``knowledge/articles/<id>.md`` (sub-folders are allowed)::

    ---
    id: returns-start-a-return
    title: How do I return an item?
    audience: b2c
    tags: [returns, orders]
    questions:
      - Can I send back something I bought?
    language: en
    updated: 2026-10-14
    owner: returns-team
    ---
    First paragraph = the short answer shown in chat.

    ## Details
    ...

:func:`parse_article` reads one file, :func:`load_articles` a whole folder, and
:func:`validate_articles` reports every problem without raising. Problems always name
the file and the front-matter field (and the line, where there is one), so editors can fix
them without reading code.

Limits (all in this one place; an article over a limit is refused with a problem, never
truncated):

* :data:`MAX_FILE_BYTES` (1 MB): the file is not read any further than that. A 1,500-word
  article is about 10 kB;
* :data:`MAX_BODY_CHARS` (100,000 characters, about 15,000 words): longer texts belong in
  several articles, and each passage costs an encoding at every full build;
* :data:`MAX_TITLE_CHARS` (500): a title is the question the article answers, shown on
  buttons and in citations; real customer questions run to about 430 characters (the
  longest in Banking77), so a title may be one of them;
* :data:`MAX_QUESTION_CHARS` (1,000) per alternate question and :data:`MAX_QUESTIONS`
  (1,000) per article: generous enough for a knowledge base whose alternate questions are
  real customer messages (Banking77 has up to 227 per intent).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

__all__ = [
    "AUDIENCES",
    "ID_PATTERN",
    "MAX_BODY_CHARS",
    "MAX_FILE_BYTES",
    "MAX_QUESTIONS",
    "MAX_QUESTION_CHARS",
    "MAX_TITLE_CHARS",
    "OUT_OF_SCOPE_TAG",
    "SUMMARY_MAX_CHARS",
    "Article",
    "ArticleError",
    "ArticleProblem",
    "find_article_files",
    "is_valid_id",
    "load_articles",
    "parse_article",
    "render_new_article",
    "scan_articles",
    "source_digest",
    "validate_articles",
]

Audience = Literal["b2c", "b2b", "all"]
AUDIENCES: tuple[str, ...] = ("b2c", "b2b", "all")
ID_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
SUMMARY_MAX_CHARS = 600
# An article tagged so lists questions the bot must not answer (Rasa's ``out_of_scope``
# intent, as an article): it is searched like any other, and when it ranks first the bot
# says it does not know. It is never answered with, suggested or shown (see
# knowledge.index.KnowledgeIndex.search).
OUT_OF_SCOPE_TAG = "out-of-scope"
MAX_FILE_BYTES = 1_000_000
MAX_BODY_CHARS = 100_000
MAX_TITLE_CHARS = 500
MAX_QUESTION_CHARS = 1000
MAX_QUESTIONS = 1000
FRONT_MATTER_FIELDS: tuple[str, ...] = (
    "id",
    "title",
    "audience",
    "tags",
    "questions",
    "language",
    "updated",
    "owner",
)

_DELIMITER = "---"
# Part of every source digest: bump it when parsing or validation changes, so that articles
# parsed by older code are parsed again instead of reused.
_PARSER_VERSION = b"articles-1\0"
_SENTENCE_END = re.compile(r"[.!?…][\"')\]]*(?=\s|$)")
_HEADING_LINE = re.compile(r"^\s{0,3}#{1,6}(\s|$)")


@dataclass(frozen=True)
class ArticleProblem:
    """One thing wrong with one article file.

    Attributes:
        path: The file (or folder) the problem was found in.
        field: The front-matter field at fault (``"body"`` for the Markdown body),
            or ``None`` when the problem concerns the file as a whole.
        message: What is wrong, in words an editor can act on.
        line: The 1-based line in the file where the problem is, when known.
    """

    path: Path
    field: str | None
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else f"{self.path}"
        return f"{where}: {self.field or '-'}: {self.message}"


class ArticleError(Exception):
    """Raised when one or more articles are unreadable or invalid.

    Attributes:
        problems: Every problem found, in file order.
        message: A human summary listing the problems.
    """

    def __init__(self, problems: Iterable[ArticleProblem], message: str | None = None) -> None:
        self.problems: list[ArticleProblem] = list(problems)
        if message is None:
            count = len(self.problems)
            noun = "problem" if count == 1 else "problems"
            lines = "\n".join(f"  {problem}" for problem in self.problems)
            message = f"{count} article {noun}:\n{lines}" if lines else "invalid articles"
        self.message = message
        super().__init__(message)


class Article(BaseModel):
    """A validated knowledge-base article.

    Attributes:
        id: Slug (``[a-z0-9-]+``), equal to the file stem and unique.
        title: The question or headline the article answers.
        audience: Who may see it: ``b2c`` customers, ``b2b`` business clients or ``all``.
        tags: Free-form topic tags.
        questions: Alternative phrasings of the question, indexed for search.
        language: Language code, e.g. ``en``.
        updated: Date of the last content review.
        owner: Team responsible for the content.
        body: The full Markdown body (front matter removed).
        path: Source file, when the article was read from disk.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    id: str
    title: str
    audience: Audience
    tags: list[str]
    questions: list[str]
    language: str
    updated: datetime.date
    owner: str
    body: str
    path: Path | None = None

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not ID_PATTERN.match(value):
            raise ValueError(
                f"{value!r} is not a valid id; use lowercase letters, digits and single "
                "hyphens, e.g. 'returns-start-a-return'"
            )
        return value

    @field_validator("title", "language", "owner", "body")
    @classmethod
    def _check_not_empty(cls, value: str) -> str:
        if not value:
            raise ValueError("must not be empty")
        return value

    @field_validator("title")
    @classmethod
    def _check_title_length(cls, value: str) -> str:
        if len(value) > MAX_TITLE_CHARS:
            raise ValueError(
                f"is {len(value):,} characters long, the limit is {MAX_TITLE_CHARS}; "
                "write the question the article answers, and put details in the body"
            )
        return value

    @field_validator("body")
    @classmethod
    def _check_body_length(cls, value: str) -> str:
        if len(value) > MAX_BODY_CHARS:
            raise ValueError(
                f"is {len(value):,} characters long, the limit is {MAX_BODY_CHARS:,}; "
                "split it into several articles"
            )
        return value

    @field_validator("questions")
    @classmethod
    def _check_questions_length(cls, values: list[str]) -> list[str]:
        if len(values) > MAX_QUESTIONS:
            raise ValueError(f"has {len(values)} questions, the limit is {MAX_QUESTIONS}")
        long = [
            str(n) for n, value in enumerate(values, start=1) if len(value) > MAX_QUESTION_CHARS
        ]
        if long:
            raise ValueError(
                f"entry {', '.join(long)} is longer than {MAX_QUESTION_CHARS} characters; "
                "an alternate question is one short question"
            )
        return values

    @field_validator("tags", "questions")
    @classmethod
    def _check_items(cls, values: list[str]) -> list[str]:
        cleaned = [value.strip() for value in values]
        empty = [str(number) for number, value in enumerate(cleaned, start=1) if not value]
        if empty:
            raise ValueError(f"entry {', '.join(empty)} is empty; remove it or write the text")
        return cleaned

    @property
    def out_of_scope(self) -> bool:
        """Whether the article lists questions to decline (tagged :data:`OUT_OF_SCOPE_TAG`)."""
        return OUT_OF_SCOPE_TAG in self.tags

    @property
    def summary(self) -> str:
        """The first paragraph of the body: the short answer shown in chat."""
        return extract_summary(self.body)

    def canonical_content(self) -> dict[str, Any]:
        """Return the article's content as JSON-ready data, without its file path."""
        return self.model_dump(mode="json", exclude={"path"})


def extract_summary(body: str, max_chars: int = SUMMARY_MAX_CHARS) -> str:
    """Return the first paragraph of a Markdown body, cut at a sentence if too long.

    Leading headings are skipped and line breaks inside the paragraph become spaces.

    Args:
        body: Markdown text.
        max_chars: Longest summary returned.

    Returns:
        The summary text, or ``""`` for an empty body.
    """
    paragraph = _first_paragraph(body)
    if len(paragraph) <= max_chars:
        return paragraph
    return _truncate_at_sentence(paragraph, max_chars)


def _first_paragraph(body: str) -> str:
    lines: list[str] = []
    for raw in body.splitlines():
        line = raw.strip()
        if not line:
            if lines:
                break
            continue
        if not lines and _HEADING_LINE.match(line):
            continue
        lines.append(line)
    return " ".join(lines)


def _truncate_at_sentence(text: str, max_chars: int) -> str:
    window = text[:max_chars]
    ends = [match.end() for match in _SENTENCE_END.finditer(window)]
    if ends:
        return window[: ends[-1]].strip()
    cut = window.rsplit(" ", 1)[0] if " " in window else window[: max_chars - 1]
    return cut.rstrip(" ,;:-") + "…"


def is_valid_id(value: str) -> bool:
    """Return whether ``value`` is a valid article id (``[a-z0-9]`` words joined by ``-``)."""
    return bool(ID_PATTERN.match(value))


def parse_article(path: Path) -> Article:
    """Read and validate one article file.

    Args:
        path: The Markdown file.

    Returns:
        The validated article.

    Raises:
        ArticleError: If the file cannot be read or decoded, has no or broken front
            matter, invalid or missing fields, an id that differs from the file name,
            or an empty body. Every problem found in the file is listed.
    """
    path = Path(path)
    data, problem = _read_bytes(path)
    if problem is not None:
        raise ArticleError([problem])
    assert data is not None
    return _parse_data(path, data)


def source_digest(data: bytes) -> str:
    """Return the key under which a file's parsed article may be reused (see scan_articles).

    Args:
        data: The file's bytes.

    Returns:
        sha256 over the parser's version and the bytes.
    """
    return hashlib.sha256(_PARSER_VERSION + data).hexdigest()


def _parse_data(path: Path, data: bytes) -> Article:
    text, problem = _decode(path, data)
    if problem is not None:
        raise ArticleError([problem])
    assert text is not None
    front, body, problems = _split_front_matter(path, text)
    if front is None:
        raise ArticleError(problems)
    article, problems = _validate(path, front, body)
    if article is None or problems:
        raise ArticleError(_with_lines(problems, text))
    return article


_FIELD_LINE = re.compile(r"^([A-Za-z_][\w-]*)\s*:")


def _with_lines(problems: list[ArticleProblem], text: str) -> list[ArticleProblem]:
    """Add the line of the front-matter field (or of the body) each problem is about."""
    lines = text.split("\n")
    where: dict[str, int] = {}
    for number, line in enumerate(lines[1:], start=2):
        if line.strip() == _DELIMITER:
            body = next(
                (n for n in range(number + 1, len(lines) + 1) if lines[n - 1].strip()), number
            )
            where.setdefault("body", body)
            break
        match = _FIELD_LINE.match(line)
        if match:
            where.setdefault(match.group(1), number)
    return [
        replace(problem, line=where.get(problem.field or ""))
        if problem.line is None and problem.field in where
        else problem
        for problem in problems
    ]


def _read_bytes(path: Path) -> tuple[bytes | None, ArticleProblem | None]:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return None, ArticleProblem(path, None, f"cannot read file: {exc.strerror or exc}")
    if len(data) > MAX_FILE_BYTES:
        size = _file_size(path)
        return None, ArticleProblem(
            path,
            None,
            f"file is {size / 1e6:.1f} MB, the limit is {MAX_FILE_BYTES / 1e6:.0f} MB; "
            "an article should be one answer: split it into several articles",
        )
    return data, None


def _decode(path: Path, data: bytes) -> tuple[str | None, ArticleProblem | None]:
    if b"\x00" in data:
        return None, ArticleProblem(path, None, "binary file, expected UTF-8 Markdown text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        bad = data[exc.start : exc.start + 1].hex()
        return None, ArticleProblem(
            path,
            None,
            f"not valid UTF-8 (byte 0x{bad} on line {line}); save the file as UTF-8",
        )
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n"), None


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return MAX_FILE_BYTES + 1


def _split_front_matter(
    path: Path, text: str
) -> tuple[dict[str, Any] | None, str, list[ArticleProblem]]:
    lines = text.split("\n")
    if not lines or lines[0].strip() != _DELIMITER:
        return (
            None,
            "",
            [
                ArticleProblem(
                    path,
                    None,
                    "missing front matter; the file must start with a '---' line, "
                    "then the YAML fields, then another '---' line",
                )
            ],
        )
    closing = next(
        (number for number in range(1, len(lines)) if lines[number].strip() == _DELIMITER),
        None,
    )
    if closing is None:
        return (
            None,
            "",
            [ArticleProblem(path, None, "front matter is not closed; add a '---' line after it")],
        )
    yaml_text = "\n".join(lines[1:closing])
    body = "\n".join(lines[closing + 1 :]).strip()
    try:
        data = yaml.load(yaml_text, Loader=_FrontMatterLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        return None, body, [ArticleProblem(path, None, _describe_yaml_error(exc))]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return (
            None,
            body,
            [
                ArticleProblem(
                    path,
                    None,
                    f"front matter must be 'field: value' lines, got {type(data).__name__}",
                )
            ],
        )
    return {str(key): value for key, value in data.items()}, body, []


# libyaml's parser when PyYAML was built with it: ~10x faster, which is most of the time a
# publish spends reading 10,000 articles (bench.scale); the pure-Python one otherwise.
_SafeLoaderBase: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _FrontMatterLoader(_SafeLoaderBase):
    """Safe loader that keeps impossible dates (``2026-13-45``) as text for validation."""

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        """Build a date, or return the raw text if it is not a real date."""
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:
            return self.construct_scalar(node)


_FrontMatterLoader.add_constructor(
    "tag:yaml.org,2002:timestamp", _FrontMatterLoader.construct_yaml_timestamp
)


def _describe_yaml_error(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    detail = f"{context}, {problem}" if context else str(problem)
    if mark is not None:
        # +2: file line numbers are 1-based and the YAML starts after the opening '---'.
        return f"invalid YAML in front matter on line {mark.line + 2}: {detail}"
    return f"invalid YAML in front matter: {detail}"


def _validate(
    path: Path, front: dict[str, Any], body: str
) -> tuple[Article | None, list[ArticleProblem]]:
    problems: list[ArticleProblem] = []
    missing = [name for name in FRONT_MATTER_FIELDS if name not in front]
    for name in missing:
        problems.append(ArticleProblem(path, name, "required field is missing"))
    for name in front:
        if name not in FRONT_MATTER_FIELDS:
            problems.append(
                ArticleProblem(
                    path,
                    name,
                    "unknown field; allowed fields are " + ", ".join(FRONT_MATTER_FIELDS),
                )
            )
    present = {key: value for key, value in front.items() if key in FRONT_MATTER_FIELDS}
    try:
        article = Article.model_validate({**present, "body": body, "path": path})
    except ValidationError as exc:
        problems.extend(_convert_errors(path, exc, skip=set(missing)))
        return None, problems
    if article.id != path.stem:
        problems.append(
            ArticleProblem(
                path,
                "id",
                f"id {article.id!r} does not match the file name; "
                f"rename the file to {article.id}.md or set id: {path.stem}",
            )
        )
    return (article if not problems else None), problems


def _convert_errors(path: Path, exc: ValidationError, *, skip: set[str]) -> list[ArticleProblem]:
    problems = []
    for error in exc.errors():
        location = [str(part) for part in error["loc"]]
        field = location[0] if location else None
        if field in skip and error["type"] == "missing":
            continue
        if field == "body" and error["type"] == "value_error" and not error.get("input"):
            message = "the article has no text after the front matter; write the answer there"
        else:
            message = _error_message(error)
        if len(location) > 1:
            message = (
                f"item {int(location[1]) + 1}: {message}" if location[1].isdigit() else message
            )
        problems.append(ArticleProblem(path, field, message))
    return problems


def _error_message(error: Any) -> str:
    kind = error["type"]
    value = error.get("input")
    if kind == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    if kind == "string_type":
        shown = json.dumps(value, default=str)
        return f"must be text, got {shown}; put the value in quotes"
    if kind == "list_type":
        return "must be a list, e.g. [a, b] or one '- item' per line ([] for none)"
    if kind == "literal_error":
        return f"must be one of {', '.join(AUDIENCES)}, got {value!r}"
    if kind.startswith("date"):
        return f"must be a date like 2026-10-14, got {value!r}"
    return str(error["msg"])


def find_article_files(directory: Path) -> list[Path]:
    """Return the article files under ``directory``, sorted by path.

    Hidden files and folders, files starting with ``_`` and ``README.md`` are skipped.

    Args:
        directory: The articles folder; sub-folders are searched too.

    Returns:
        The Markdown files that should be articles.
    """
    files: list[Path] = []
    for folder, subfolders, names in os.walk(directory):  # ~4x faster than rglob at 10k files
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        for name in names:
            if not name.endswith(".md") or name.startswith((".", "_")):
                continue
            if name.lower() == "readme.md":
                continue
            path = Path(folder) / name
            if os.path.isfile(path):
                files.append(path)
    return sorted(files)


def scan_articles(
    directory: Path,
    *,
    known: Mapping[str, Article] | None = None,
    digests: dict[str, str] | None = None,
) -> tuple[list[Article], list[ArticleProblem]]:
    """Parse every article in a folder, collecting problems instead of raising.

    Args:
        directory: The articles folder.
        known: Articles parsed before, by the :func:`source_digest` of their file's bytes
            (the live build's): a file with the same bytes and name is not parsed again
            (reading 10,000 articles is most of a one-article publish otherwise).
        digests: Filled with each article's :func:`source_digest`, by id.

    Returns:
        The valid articles sorted by id (articles with a duplicate id are left out)
        and every problem found.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return [], [ArticleProblem(directory, None, "articles folder not found")]
    articles: list[Article] = []
    problems: list[ArticleProblem] = []
    for path in find_article_files(directory):
        data, problem = _read_bytes(path)
        if problem is not None or data is None:
            problems.extend([problem] if problem else [])
            continue
        digest = source_digest(data) if known is not None or digests is not None else ""
        cached = known.get(digest) if known else None
        try:
            if cached is not None and cached.id == path.stem:
                article = cached.model_copy(update={"path": path})
            else:
                article = _parse_data(path, data)
        except ArticleError as exc:
            problems.extend(exc.problems)
            continue
        articles.append(article)
        if digests is not None:
            digests.setdefault(article.id, digest)
    unique, duplicate_problems = _drop_duplicates(articles)
    problems.extend(duplicate_problems)
    return sorted(unique, key=lambda article: article.id), problems


def _drop_duplicates(articles: list[Article]) -> tuple[list[Article], list[ArticleProblem]]:
    first_by_id: dict[str, Article] = {}
    duplicated: set[str] = set()
    problems = []
    for article in articles:
        first = first_by_id.get(article.id)
        if first is None:
            first_by_id[article.id] = article
            continue
        duplicated.add(article.id)
        problems.append(
            ArticleProblem(
                article.path or Path(f"{article.id}.md"),
                "id",
                f"duplicate id {article.id!r}, also used by {first.path}; ids must be unique",
            )
        )
    return [a for a in first_by_id.values() if a.id not in duplicated], problems


def load_articles(
    directory: Path,
    *,
    known: Mapping[str, Article] | None = None,
    digests: dict[str, str] | None = None,
) -> list[Article]:
    """Load every article in a folder, all or nothing.

    Args:
        directory: The articles folder.
        known: Articles parsed before, by source digest (see :func:`scan_articles`).
        digests: Filled with each article's source digest, by id.

    Returns:
        The articles sorted by id.

    Raises:
        ArticleError: Listing every problem in the folder, if there is any.
    """
    articles, problems = scan_articles(directory, known=known, digests=digests)
    if problems:
        raise ArticleError(problems)
    return articles


def validate_articles(directory: Path) -> list[ArticleProblem]:
    """Return every problem with the articles in a folder (empty when all are valid).

    Args:
        directory: The articles folder.

    Returns:
        The problems, in file order; duplicate-id problems come last.
    """
    return scan_articles(directory)[1]


def render_new_article(
    *, id: str, title: str, audience: str, owner: str, today: datetime.date
) -> str:
    """Return the text of a new article file, ready to be edited.

    Args:
        id: The article id (also the file stem).
        title: The question the article answers.
        audience: ``b2c``, ``b2b`` or ``all``.
        owner: Team responsible for the content.
        today: Value of the ``updated`` field.

    Returns:
        Markdown with complete front matter and a placeholder body; it validates as is.

    Raises:
        ValueError: If the id, title, audience or owner is invalid.
    """
    if not is_valid_id(id):
        raise ValueError(f"invalid article id {id!r}")
    if audience not in AUDIENCES:
        raise ValueError(f"audience must be one of {', '.join(AUDIENCES)}")
    if not title.strip() or not owner.strip():
        raise ValueError("title and owner must not be empty")
    return (
        f"{_DELIMITER}\n"
        f"id: {id}\n"
        f"title: {_yaml_scalar(title.strip())}\n"
        f"audience: {audience}\n"
        "tags: []\n"
        "questions: []  # other ways customers ask this, one '- question' per line\n"
        "language: en\n"
        f"updated: {today.isoformat()}\n"
        f"owner: {_yaml_scalar(owner.strip())}\n"
        f"{_DELIMITER}\n"
        "Replace this paragraph with the short answer shown in chat: one to three "
        "sentences that answer the title directly.\n"
        "\n"
        "## Details\n"
        "\n"
        "Steps, conditions and exceptions go here. Only the first paragraph is sent in "
        "chat; the whole text is used for search.\n"
    )


def _yaml_scalar(value: str) -> str:
    dumped = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10_000)
    return dumped.removesuffix("\n...\n").strip()
