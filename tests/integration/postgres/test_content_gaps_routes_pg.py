"""The content-gaps page tests (tests/integration/bot/test_content_gaps_routes.py) on PostgreSQL."""

from __future__ import annotations

import pytest

from tests.integration.bot.test_content_gaps_routes import *  # noqa: F403

pytestmark = [pytest.mark.integration, pytest.mark.network, pytest.mark.postgres]
