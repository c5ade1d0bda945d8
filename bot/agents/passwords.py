"""Random one-time passwords for new desk accounts and password resets."""

from __future__ import annotations

import secrets

from bot.agents.service import MIN_PASSWORD_CHARS

GENERATED_PASSWORD_BYTES = 15  # 20 URL-safe characters, about 120 bits


def generate_password() -> str:
    """A random password to hand to a person once (long enough for the strength check).

    Returns:
        A URL-safe random string of at least ``MIN_PASSWORD_CHARS`` characters.
    """
    password = secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
    assert len(password) >= MIN_PASSWORD_CHARS
    return password
