"""The agent desk over HTTP on PostgreSQL: queue order, the ticket page's context queries,
claim, reply, note, resolve and assign with their audit trail.

Tests of tests/integration/bot/test_desk_routes.py, run unchanged.
"""

from __future__ import annotations

import pytest

from tests.integration.bot.test_desk_routes import (  # noqa: F401
    desk,
    fake_rasa,
    test_a_lead_assigns_a_ticket,
    test_claim_reply_note_resolve_write_audit_events,
    test_queue_is_ordered_by_priority_then_waiting_time,
    test_the_ticket_page_shows_the_whole_context,
)

pytestmark = [pytest.mark.integration, pytest.mark.network, pytest.mark.postgres]
