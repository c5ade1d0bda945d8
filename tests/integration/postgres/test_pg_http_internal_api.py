"""The internal API of the action server, on PostgreSQL (test_internal_api.py of the bot tier)."""

from __future__ import annotations

import pytest

from tests.integration.bot.test_internal_api import (  # noqa: F401
    api,
    app_settings,
    test_hostile_bodies_get_422_not_500,
    test_the_actions_client_speaks_the_same_contract,
)

pytestmark = [pytest.mark.integration, pytest.mark.network, pytest.mark.postgres]
