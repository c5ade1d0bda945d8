"""Signed attachment links never reach the access log with their signature."""

from __future__ import annotations

import logging

import pytest

from bot.web.access_log import (
    ACCESS_LOGGER,
    REDACTED,
    RedactSecretsInAccessLog,
    install_access_log_redaction,
    redact_query,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            "/attachments/7?exp=1764000000&sig=abcDEF_-12",
            f"/attachments/7?exp=1764000000&sig={REDACTED}",
        ),
        ("/attachments/7?sig=abc&exp=1", f"/attachments/7?sig={REDACTED}&exp=1"),
        ("/x?token=s3cret", f"/x?token={REDACTED}"),
        ("/desk/queue?signal=1", "/desk/queue?signal=1"),  # only whole parameter names
        ("/static/chat.js", "/static/chat.js"),
    ],
)
def test_redact_query(path: str, expected: str) -> None:
    assert redact_query(path) == expected


def test_uvicorn_access_records_are_rewritten_not_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    install_access_log_redaction()
    install_access_log_redaction()  # idempotent
    access = logging.getLogger(ACCESS_LOGGER)
    assert sum(isinstance(f, RedactSecretsInAccessLog) for f in access.filters) == 1
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        # uvicorn's own format and arguments (client, method, full path, version, status).
        access.info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5000",
            "GET",
            "/attachments/7?exp=1764000000&sig=SECRETSIG",
            "1.1",
            200,
        )
    assert "SECRETSIG" not in caplog.text
    assert f'"GET /attachments/7?exp=1764000000&sig={REDACTED} HTTP/1.1" 200' in caplog.text
