"""The unit tier's tests/unit/bot/test_chat_rate_limit.py, run unchanged against PostgreSQL."""

from __future__ import annotations

import pytest

from tests.unit.bot.test_chat_rate_limit import *  # noqa: F403

pytestmark = [pytest.mark.integration, pytest.mark.network, pytest.mark.postgres]
