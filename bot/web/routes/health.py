"""Liveness and readiness checks."""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from bot.rasa_client import RasaClient, RasaError
from bot.web.deps import RasaClientDep

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/health", tags=["health"])

ComponentState = Literal["ok", "down"]


class Health(BaseModel):
    """Liveness answer."""

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """Readiness answer: the state of each dependency."""

    status: Literal["ok", "unavailable"]
    components: dict[str, ComponentState]


@router.api_route("", methods=["GET", "HEAD"], response_model=Health)
async def health() -> Health:
    """Answer ``{"status": "ok"}`` while the process is serving requests."""
    return Health()


def _database_ok(factory: sessionmaker[Session]) -> bool:
    try:
        with factory() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        logger.error("readiness: database check failed: %s", exc)
        return False
    return True


async def _rasa_ok(client: RasaClient) -> bool:
    try:
        await client.status()
    except RasaError as exc:
        logger.warning("readiness: rasa check failed: %s", exc.message)
        return False
    return True


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
async def ready(request: Request, rasa_client: RasaClientDep) -> JSONResponse:
    """Check the database and Rasa; 503 names whichever is down."""
    database = await run_in_threadpool(_database_ok, request.app.state.session_factory)
    rasa = await _rasa_ok(rasa_client)
    components: dict[str, ComponentState] = {
        "database": "ok" if database else "down",
        "rasa": "ok" if rasa else "down",
    }
    healthy = database and rasa
    body = Readiness(status="ok" if healthy else "unavailable", components=components)
    return JSONResponse(body.model_dump(), status_code=200 if healthy else 503)
