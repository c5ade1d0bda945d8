"""Request dependencies: settings, database sessions, the chat service, templates."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import HTTPConnection

from bot.chat.service import ChatService
from bot.config import Settings
from bot.rasa_client import RasaClient
from bot.realtime.broker import Broker


def get_settings(connection: HTTPConnection) -> Settings:
    """Return the settings the app was created with."""
    return cast(Settings, connection.app.state.settings)


def get_session(connection: HTTPConnection) -> Iterator[Session]:
    """Yield a database session that is closed after the request."""
    factory = cast(sessionmaker[Session], connection.app.state.session_factory)
    with factory() as session:
        yield session


def get_chat_service(connection: HTTPConnection) -> ChatService:
    """Return the process-wide chat service."""
    return cast(ChatService, connection.app.state.chat_service)


def get_broker(connection: HTTPConnection) -> Broker:
    """Return the process-wide event broker."""
    return cast(Broker, connection.app.state.broker)


def get_rasa_client(connection: HTTPConnection) -> RasaClient:
    """Return the process-wide Rasa client."""
    return cast(RasaClient, connection.app.state.rasa_client)


def get_templates(request: Request) -> Jinja2Templates:
    """Return the Jinja2 templates."""
    return cast(Jinja2Templates, request.app.state.templates)


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
ChatServiceDep = Annotated[ChatService, Depends(get_chat_service)]
BrokerDep = Annotated[Broker, Depends(get_broker)]
RasaClientDep = Annotated[RasaClient, Depends(get_rasa_client)]
TemplatesDep = Annotated[Jinja2Templates, Depends(get_templates)]
