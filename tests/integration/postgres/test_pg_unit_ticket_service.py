"""The unit tier's tests/unit/bot/test_ticket_service.py, run unchanged against PostgreSQL."""

from __future__ import annotations

import pytest

from tests.unit.bot.test_ticket_service import *  # noqa: F403

pytestmark = [pytest.mark.integration, pytest.mark.network, pytest.mark.postgres]
