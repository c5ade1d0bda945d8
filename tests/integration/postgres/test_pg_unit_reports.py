"""The unit tier's tests/unit/bot/test_reports.py, run unchanged against PostgreSQL."""

from __future__ import annotations

import pytest

from tests.unit.bot.test_reports import *  # noqa: F403

pytestmark = [pytest.mark.integration, pytest.mark.network, pytest.mark.postgres]
