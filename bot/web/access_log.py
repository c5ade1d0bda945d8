"""Keep short-lived secrets out of the access log.

Signed attachment links (``/attachments/7?exp=…&sig=…``) are capabilities: whoever holds
one can download the file until it expires. uvicorn's access log writes every request's
path with its query, so :class:`RedactSecretsInAccessLog` replaces the signature with
``[redacted]`` before the line is written. The file id and expiry stay, so an operator can
still follow a request.
"""

from __future__ import annotations

import logging
import re

ACCESS_LOGGER = "uvicorn.access"
REDACTED = "[redacted]"
# Query parameters whose values are secrets.
_SECRET_PARAMS = re.compile(r"(?P<name>(?:^|[?&])(?:sig|token)=)[^&\s]*")


def redact_query(path: str) -> str:
    """Return ``path`` with the values of secret query parameters replaced."""
    return _SECRET_PARAMS.sub(lambda match: match.group("name") + REDACTED, path)


class RedactSecretsInAccessLog(logging.Filter):
    """Rewrite the path argument of uvicorn's access-log records (never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record's path in place and keep the record."""
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True


def install_access_log_redaction() -> None:
    """Attach the filter to uvicorn's access logger once (safe to call again)."""
    access = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(existing, RedactSecretsInAccessLog) for existing in access.filters):
        access.addFilter(RedactSecretsInAccessLog())
