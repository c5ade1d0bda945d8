"""Editor errors: each carries the article id (possibly forged; only logged) and one sentence."""

from __future__ import annotations

from collections.abc import Sequence


class EditorError(Exception):
    """Base class of knowledge-editor errors.

    Attributes:
        article_id: The article concerned, if any.
        message: One sentence an editor can be shown.
        problems: ``(field, message)`` pairs for invalid content.
    """

    status_code = 400

    def __init__(
        self,
        message: str,
        *,
        article_id: str | None = None,
        problems: Sequence[tuple[str | None, str]] = (),
    ) -> None:
        self.article_id = article_id
        self.message = message
        self.problems = list(problems)
        super().__init__(message)


class ArticleNotFoundError(EditorError):
    """No such article (or revision); forged ids end here."""

    status_code = 404


class ArticleExistsError(EditorError):
    """An article with this id already exists."""

    status_code = 409


class InvalidArticleError(EditorError):
    """The content would not validate; ``problems`` says where."""

    status_code = 422


class StaleRevisionError(EditorError):
    """Someone saved a newer revision since the editor opened the form."""

    status_code = 409


class ReviewError(EditorError):
    """A review step that is not allowed (own revision, wrong state, wrong role)."""

    status_code = 403


class PublishBusyError(EditorError):
    """Another publish is running; try again in a few seconds."""

    status_code = 409


class PublishFailedError(EditorError):
    """The build failed; the live index is unchanged."""

    status_code = 500
