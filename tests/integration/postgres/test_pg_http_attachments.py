"""Attachments over HTTP on PostgreSQL (tests/integration/bot/test_attachments_api.py)."""

from __future__ import annotations

import pytest

from tests.integration.bot.test_attachments_api import (  # noqa: F401
    _rasa_takes_tracker_events,
    demo,
    published,
    sign_in,
    test_a_conversation_holds_a_bounded_number_of_customer_files,
    test_agent_uploads_for_a_ticket_of_their_team_and_downloads_it,
    test_customer_upload_is_stored_shown_and_downloadable,
    test_rating_buttons_after_resolve_store_the_rating,
    test_the_history_shows_the_attachment_with_a_fresh_link_and_a_note,
    test_upload_in_an_open_ticket_tells_the_desk,
)

pytestmark = [pytest.mark.integration, pytest.mark.network, pytest.mark.postgres]
