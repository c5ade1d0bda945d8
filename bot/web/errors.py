"""Every exception-to-response mapping of the bot service, in one place.

Customers get one plain sentence (an HTML page for browser routes), never a traceback;
operators get the log record with ids.
"""

from __future__ import annotations

import logging
from typing import cast
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from bot.agents.service import AgentError
from bot.chat import messages
from bot.conversations.service import ConversationNotFoundError
from bot.handoff.errors import TicketError
from bot.rasa_client import RasaResponseError, RasaUnavailableError
from bot.web.auth import SIGN_IN_PATH, SignInRequiredError

logger = logging.getLogger(__name__)


class ArticleNotFoundError(LookupError):
    """No (valid) knowledge-base article has this id.

    Attributes:
        article_id: The id that was asked for (may be hostile; only logged with %r).
        message: A human explanation.
    """

    def __init__(self, article_id: str) -> None:
        self.article_id = article_id
        self.message = "This article doesn't exist or is no longer available."
        super().__init__(self.message)


async def _article_not_found(request: Request, exc: Exception) -> Response:
    error = cast(ArticleNotFoundError, exc)
    templates = cast(Jinja2Templates, request.app.state.templates)
    return templates.TemplateResponse(
        request, "not_found.html", {"message": error.message}, status_code=404
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    error = cast(StarletteHTTPException, exc)
    if error.status_code == 404 and not request.url.path.startswith("/api/"):
        templates = cast(Jinja2Templates, request.app.state.templates)
        return templates.TemplateResponse(
            request,
            "not_found.html",
            {"message": "There is nothing at this address."},
            status_code=404,
        )
    return JSONResponse(
        {"detail": error.detail}, status_code=error.status_code, headers=error.headers
    )


async def _conversation_not_found(request: Request, exc: Exception) -> Response:
    error = cast(ConversationNotFoundError, exc)
    logger.warning("unknown conversation=%s on %s", error.conversation_id, request.url.path)
    return JSONResponse({"error": "This conversation doesn't exist."}, status_code=404)


async def _rasa_unavailable(request: Request, exc: Exception) -> Response:
    error = cast(RasaUnavailableError, exc)
    logger.error("rasa unavailable conversation=%s: %s", error.sender_id, error.message)
    return JSONResponse({"error": messages.RASA_UNAVAILABLE}, status_code=503)


async def _rasa_bad_response(request: Request, exc: Exception) -> Response:
    error = cast(RasaResponseError, exc)
    logger.error("rasa bad response conversation=%s: %s", error.sender_id, error.message)
    return JSONResponse({"error": messages.RASA_UNAVAILABLE}, status_code=502)


async def _sign_in_required(request: Request, exc: Exception) -> Response:
    error = cast(SignInRequiredError, exc)
    if error.wants_html and request.method == "GET":
        return RedirectResponse(f"{SIGN_IN_PATH}?next={quote(error.next_path)}", status_code=303)
    return JSONResponse({"error": "Please sign in."}, status_code=401)


async def _ticket_error(request: Request, exc: Exception) -> Response:
    error = cast(TicketError, exc)
    logger.info(
        "ticket action refused ticket=%s on %s: %s", error.ticket_id, request.url.path, error
    )
    return JSONResponse({"error": error.message}, status_code=error.status_code)


async def _agent_error(request: Request, exc: Exception) -> Response:
    error = cast(AgentError, exc)
    return JSONResponse({"error": error.message}, status_code=400)


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"error": messages.UNEXPECTED_ERROR}, status_code=500)


def register_exception_handlers(app: FastAPI) -> None:
    """Map domain and client exceptions to HTTP status codes.

    Args:
        app: The application to register the handlers on.
    """
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ArticleNotFoundError, _article_not_found)
    app.add_exception_handler(ConversationNotFoundError, _conversation_not_found)
    app.add_exception_handler(RasaUnavailableError, _rasa_unavailable)
    app.add_exception_handler(RasaResponseError, _rasa_bad_response)
    app.add_exception_handler(SignInRequiredError, _sign_in_required)
    app.add_exception_handler(TicketError, _ticket_error)
    app.add_exception_handler(AgentError, _agent_error)
    app.add_exception_handler(Exception, _unexpected)
