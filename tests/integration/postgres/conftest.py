"""Fixtures of the PostgreSQL tier: one throwaway server, one migrated template, a copy each.

The server starts once per run (``tests/helpers/postgres_server.py``); the template is
migrated once with the project's own runner (``bot.db.session.upgrade_database``), and
each test gets a fresh ``CREATE DATABASE … TEMPLATE`` copy, dropped afterwards.

``database_url`` has the same name as the unit tier's fixture, and the unit tier's
database fixtures are re-exported here, so unit tests imported into this folder
(``test_pg_unit_*.py``) run unchanged against PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from bot.db.session import upgrade_database
from bot.ops.environments import postgres_bin_dir
from tests.helpers.postgres_server import PostgresServer, running_postgres

# The unit tier's fixtures over ``database_url`` (engine, session_factory, session,
# demo_session) and its scripted Rasa, for the unit tests re-run here.
from tests.unit.bot.conftest import (  # noqa: F401
    demo_session,
    engine,
    rasa,
    session,
    session_factory,
)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server for the whole run (skipped only without binaries)."""
    if postgres_bin_dir() is None:
        pytest.skip(
            "PostgreSQL server binaries are missing (/usr/lib/postgresql/*/bin/initdb): "
            "run `python -m bot setup --for-tests`, which installs Debian's postgresql"
        )
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def migrated_template(postgres_server: PostgresServer) -> str:
    """A database migrated to head once; every test's database is a copy of it."""
    name = postgres_server.create_database(prefix="template")
    upgrade_database(postgres_server.url(name))
    return name


@pytest.fixture
def new_database(
    postgres_server: PostgresServer,
) -> Iterator[Callable[..., str]]:
    """Make databases (empty, or copies of a template) dropped after the test; returns URLs."""
    made: list[str] = []

    def make(*, template: str | None = None) -> str:
        name = postgres_server.create_database(template=template)
        made.append(name)
        return postgres_server.url(name)

    yield make
    for name in made:
        postgres_server.drop_database(name)


@pytest.fixture
def database_url(new_database: Callable[..., str], migrated_template: str) -> str:
    """A fresh migrated database for this test."""
    return new_database(template=migrated_template)
