"""The unit tier's content-gaps collection tests, run unchanged against PostgreSQL."""

from __future__ import annotations

import pytest

from tests.unit.bot.test_content_gaps_collect import *  # noqa: F403

pytestmark = [pytest.mark.integration, pytest.mark.network, pytest.mark.postgres]
