"""Alembic migrations of the app database (run by ``bot.db.session.upgrade_database``)."""
