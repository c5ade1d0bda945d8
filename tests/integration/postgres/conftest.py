"""Fixtures of the PostgreSQL tier: one throwaway server, one migrated template, a copy each.

The server starts once per run (``tests/helpers/postgres_server.py``); the template is
migrated once with the project's own runner (``bot.db.session.upgrade_database``), and
each test gets a fresh ``CREATE DATABASE … TEMPLATE`` copy, dropped afterwards.

``database_url`` has the same name as the unit tier's fixture, and the unit tier's
database fixtures are re-exported here, so unit tests imported into this folder
(``test_pg_unit_*.py``) run unchanged against PostgreSQL; likewise ``settings`` and the
bot service tier's client for its HTTP tests (``test_pg_http_*.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from bot.agents import service as agents_service
from bot.config import Settings
from bot.db.session import upgrade_database
from bot.ops.environments import postgres_bin_dir
from tests.helpers.postgres_server import PostgresServer, TemplateCopies, running_postgres

# The bot service's test client over ``settings`` and its fake Rasa, for the HTTP tests
# re-run here (``test_pg_http_*.py``).
from tests.integration.bot.conftest import ARTICLE, client, fake_rasa  # noqa: F401

# The unit tier's fixtures over ``database_url`` (engine, session_factory, session,
# demo_session) and its scripted Rasa, for the unit tests re-run here.
from tests.unit.bot.conftest import (  # noqa: F401
    demo_session,
    engine,
    rasa,
    session,
    session_factory,
)


@pytest.fixture(autouse=True)
def _cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 with minimal cost: this tier tests SQL, and sign-in tests hash a lot.

    The unit tier keeps the real parameters; the stored hashes are argon2 either way.
    """
    cheap = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))
    monkeypatch.setattr(agents_service, "password_hasher", lambda: cheap)


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


@pytest.fixture(scope="session")
def template_copies(
    postgres_server: PostgresServer, migrated_template: str
) -> Iterator[TemplateCopies]:
    copies = TemplateCopies(postgres_server, migrated_template)
    yield copies
    copies.close()


@pytest.fixture
def database_url(postgres_server: PostgresServer, template_copies: TemplateCopies) -> Iterator[str]:
    """A fresh migrated database for this test (made ahead, dropped afterwards)."""
    name = template_copies.take()
    yield postgres_server.url(name)
    template_copies.give_back(name)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """The bot service tier's settings (tests/integration/bot/conftest.py), on PostgreSQL."""
    articles = tmp_path / "articles"
    (articles / "returns").mkdir(parents=True)
    (articles / "returns" / "returns-start-a-return.md").write_text(ARTICLE, encoding="utf-8")
    (articles / "broken-article.md").write_text("no front matter\n", encoding="utf-8")
    return Settings(
        project_root=tmp_path,
        database_url=database_url,
        articles_dir=articles,
        max_message_chars=2000,
    )
