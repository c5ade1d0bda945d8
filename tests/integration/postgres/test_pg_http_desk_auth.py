"""Desk sign-in over HTTP on PostgreSQL: rate limiting, sessions, second factor, admin pages.

Tests of tests/integration/bot/test_desk_auth.py, run unchanged against PostgreSQL.
"""

from __future__ import annotations

import pytest

from tests.integration.bot.test_desk_auth import (  # noqa: F401
    admin,
    agent,
    factory,
    second_client,
    test_a_deactivated_account_is_reactivated_with_a_new_password_only,
    test_agent_signs_in_and_gets_an_httponly_lax_session_cookie,
    test_deactivation_ends_the_agents_sessions_at_once,
    test_logout_without_csrf_is_403_and_with_it_ends_the_session,
    test_repeated_wrong_totp_codes_end_the_waiting_session,
    test_sixth_failure_in_the_window_is_429_even_with_the_right_password,
    test_wrong_password_and_unknown_user_get_the_same_message,
    test_wrong_totp_code_is_refused_and_the_right_one_completes_sign_in,
)

pytestmark = [pytest.mark.integration, pytest.mark.network, pytest.mark.postgres]
