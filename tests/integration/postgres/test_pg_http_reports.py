"""The reports page's JSON on PostgreSQL: tests/integration/bot/test_reports_routes.py."""

from __future__ import annotations

import pytest

from tests.integration.bot.test_reports_routes import (  # noqa: F401
    db,
    seeded,
    test_admin_sees_every_team,
    test_json_returns_the_figures,
    test_lead_sees_charts_figures_and_definitions,
    test_team_filter_and_scope,
)

pytestmark = [pytest.mark.integration, pytest.mark.network, pytest.mark.postgres]
