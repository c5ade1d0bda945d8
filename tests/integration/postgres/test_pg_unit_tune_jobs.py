"""The unit tier's tests/unit/bot/test_tune_jobs.py, run unchanged against PostgreSQL: one
active tune job (the unique index over ``active`` with NULLs) under simultaneous starts."""

from __future__ import annotations

import pytest

from tests.unit.bot.test_tune_jobs import *  # noqa: F403

pytestmark = [pytest.mark.integration, pytest.mark.network, pytest.mark.postgres]
