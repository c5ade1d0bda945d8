"""The FastAPI application factory of the bot service (served by ``python -m bot web``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.channels import webchat
from bot.chat.rate_limit import rate_limit_for
from bot.chat.service import ChatService
from bot.config import Settings
from bot.conversations.attachments import AttachmentService
from bot.db.session import create_db_engine, create_session_factory
from bot.handoff.desk import Desk
from bot.rasa_client import RasaClient
from bot.realtime.broker import Broker, create_broker
from bot.web.access_log import install_access_log_redaction
from bot.web.errors import register_exception_handlers
from bot.web.routes import articles, attachments, health, internal, reports
from bot.web.routes.content_gaps import router as content_gaps_router
from bot.web.routes.desk import router as desk_router
from bot.web.routes.desk_auth import router as desk_auth_router
from bot.web.routes.editor import register_editor
from bot.web.vendor import VENDOR_URL_PREFIX, VendorFiles

logger = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
    "script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    # Not "no-referrer": under it browsers send "Origin: null" with same-origin form posts
    # and fetches, which the desk's Origin check (bot.web.auth.check_origin) must refuse.
    # "same-origin" still sends nothing to other sites.
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)


class SecurityHeadersMiddleware:
    """Add the CSP and related headers to every HTTP response (pure ASGI)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, adding headers to ``http.response.start``."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in SECURITY_HEADERS if n not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def rasa_client_for(settings: Settings) -> RasaClient:
    """Build the Rasa client described by the settings.

    Args:
        settings: The process settings.

    Returns:
        A client for ``settings.rasa_url``.
    """
    token = settings.rasa_token.get_secret_value() if settings.rasa_token else None
    return RasaClient(
        base_url=settings.rasa_url, token=token, timeout=settings.rasa_timeout_seconds
    )


def frustration_detector() -> Callable[[str, list[str]], bool] | None:
    """The local frustration detector, or ``None`` if it is not available."""
    try:
        from bot.handoff.frustration import detect_frustration
    except ImportError:  # pragma: no cover - the module ships with the service
        logger.warning("frustration detector unavailable; that handoff trigger is off")
        return None

    def frustrated(text: str, earlier: list[str]) -> bool:
        return detect_frustration(text, earlier_customer_texts=earlier).frustrated

    return frustrated


def create_app(
    settings: Settings, *, rasa_client: RasaClient | None = None, broker: Broker | None = None
) -> FastAPI:
    """Create the bot service application.

    Nothing is opened here: the lifespan creates the database engine, the session
    factory and (unless one is injected) the Rasa client, and closes them on shutdown.
    Migrations are not run; ``python -m bot setup`` does that.

    Args:
        settings: The process settings.
        rasa_client: A ready client (tests inject one with ``httpx.MockTransport``);
            the caller then owns it and closes it.
        broker: A ready event broker (tests share one between two apps); by default
            the settings choose one (Redis when ``redis_url`` is set).

    Returns:
        The FastAPI application.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        install_access_log_redaction()
        engine = create_db_engine(settings.database_url)
        session_factory = create_session_factory(engine)
        client = rasa_client or rasa_client_for(settings)
        events = broker or create_broker(settings.redis_url)
        app.state.session_factory = session_factory
        app.state.rasa_client = client
        app.state.broker = events
        app.state.chat_service = ChatService(
            session_factory=session_factory,
            rasa_client=client,
            max_message_chars=settings.max_message_chars,
            broker=events,
            detect_frustration=frustration_detector(),
            turn_timing_log=settings.turn_timing_log,
            rate_limit=rate_limit_for(settings),
        )
        app.state.desk = Desk(
            session_factory=session_factory,
            broker=events,
            rasa_client=client,
            max_reply_chars=settings.max_agent_reply_chars,
        )
        app.state.attachments = AttachmentService.from_settings(
            settings, session_factory=session_factory
        )
        logger.info("bot service started rasa=%s", settings.rasa_url)
        try:
            yield
        finally:
            if rasa_client is None:
                await client.aclose()
            if broker is None:
                await events.aclose()
            engine.dispose()
            logger.info("bot service stopped")

    app = FastAPI(
        title="Concierge bot service",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.templates = Jinja2Templates(directory=str(WEB_DIR / "templates"))
    app.add_middleware(SecurityHeadersMiddleware)
    app.mount(VENDOR_URL_PREFIX, VendorFiles(), name="vendor")  # before /static
    app.mount("/static", StaticFiles(directory=str(WEB_DIR / "static")), name="static")
    app.include_router(webchat.router)
    app.include_router(internal.router)
    app.include_router(articles.router)
    app.include_router(health.router)
    app.include_router(attachments.router)
    app.include_router(reports.router)
    app.include_router(desk_auth_router)
    app.include_router(desk_router)
    register_editor(app)
    app.include_router(content_gaps_router)
    register_exception_handlers(app)
    return app
