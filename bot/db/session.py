"""Engine and session factories, and programmatic Alembic migrations.

Two processes (the bot service and the action server) write the same SQLite file, so
every SQLite connection runs in WAL mode with foreign keys on and a 5 s busy timeout.
Nothing here connects at import time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 5000


def _is_memory_database(database: str | None) -> bool:
    return not database or database == ":memory:" or "mode=memory" in database


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    """Apply the per-connection SQLite settings (runs on every new DB-API connection)."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        # Safe with WAL (no corruption on a crash); skips an fsync per commit.
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def create_db_engine(database_url: str) -> Engine:
    """Create an engine for the app database.

    For SQLite the parent folder of the database file is created, connections may be
    shared between threads, and each connection is switched to WAL with foreign keys
    and a busy timeout. In-memory SQLite uses a single shared connection.

    Args:
        database_url: A SQLAlchemy URL, e.g. ``sqlite:///var/concierge.db``.

    Returns:
        The engine (no connection is opened yet).
    """
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)

    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
    if _is_memory_database(url.database):
        kwargs["poolclass"] = StaticPool
    elif url.database and not url.database.startswith("file:"):
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def create_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return a session factory bound to ``engine`` whose objects survive commits.

    Args:
        engine: The engine from :func:`create_db_engine`.

    Returns:
        A ``sessionmaker`` with ``expire_on_commit=False``.
    """
    return sessionmaker(bind=engine, expire_on_commit=False)


def alembic_config(database_url: str) -> Config:
    """Build the Alembic configuration in code (there is no ``alembic.ini``).

    Args:
        database_url: The database to migrate.

    Returns:
        A config whose ``script_location`` is the package's ``migrations`` folder.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Kept out of the ini-style options: configparser would choke on '%' in passwords.
    config.attributes["database_url"] = database_url
    return config


def _migrate(database_url: str, step: Callable[[Config], None]) -> None:
    """Run one Alembic command in a single transaction on a connection made here."""
    config = alembic_config(database_url)
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                # Foreign keys off while migrating: SQLite can only change some tables by
                # rebuilding them, and dropping a parent with foreign keys on cascades.
                # (A PRAGMA inside a transaction is ignored, so this runs before it.)
                connection.exec_driver_sql("PRAGMA foreign_keys = OFF")
                connection.commit()
            with connection.begin():
                config.attributes["connection"] = connection
                step(config)
    finally:
        engine.dispose()


def upgrade_database(database_url: str, revision: str = "head") -> None:
    """Apply every pending migration (``alembic upgrade head``); safe to run repeatedly.

    Args:
        database_url: The database to migrate; SQLite files are created if missing.
        revision: Stop at this revision instead of the newest (tests of a migration).
    """
    _migrate(database_url, lambda config: command.upgrade(config, revision))
    logger.info("database migrated to %s", revision)


def downgrade_database(database_url: str, revision: str) -> None:
    """Undo migrations down to ``revision`` (``"base"``: an empty schema), in one transaction.

    Args:
        database_url: The database to migrate.
        revision: The revision to end at.
    """
    _migrate(database_url, lambda config: command.downgrade(config, revision))
    logger.info("database downgraded to %s", revision)
