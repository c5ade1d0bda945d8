"""The app database: one declarative base, engine/session factories and migrations.

The bot service and the action server share this database; both go through
:mod:`bot.db.session` so SQLite gets the same WAL/busy-timeout set-up in every process.
"""

from bot.db.base import Base, UTCDateTime, utcnow
from bot.db.session import create_db_engine, create_session_factory, upgrade_database

__all__ = [
    "Base",
    "UTCDateTime",
    "create_db_engine",
    "create_session_factory",
    "upgrade_database",
    "utcnow",
]
