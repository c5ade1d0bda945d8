"""The unit tier's tests/unit/bot/test_editor_service.py, run unchanged against PostgreSQL:
revisions, review, rollback, retire, and the publisher lock with concurrent threads."""

from __future__ import annotations

import pytest

from tests.unit.bot.test_editor_service import *  # noqa: F403

pytestmark = [pytest.mark.integration, pytest.mark.network, pytest.mark.postgres]
