"""Suite-wide fixtures: tests may not open sockets unless marked ``network``, e2e or integration."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

_SOCKET_MARKERS = ("network", "integration", "e2e")


class NetworkAccessError(RuntimeError):
    """Raised when an unmarked test tries to open a network connection."""


@pytest.fixture(autouse=True)
def _forbid_network(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Fail any test that connects a socket unless it carries a socket-allowing marker."""
    if any(request.node.get_closest_marker(name) for name in _SOCKET_MARKERS):
        yield
        return

    def guarded_connect(self: socket.socket, address: Any) -> None:
        if self.family == socket.AF_UNIX:
            return _real_connect(self, address)
        raise NetworkAccessError(
            f"{request.node.nodeid} opened a socket to {address!r}; mark it @pytest.mark.network"
        )

    _real_connect = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/unit as ``unit`` so tiers can be selected with -m."""
    for item in items:
        path = str(item.path)
        if "/tests/unit/" in path:
            item.add_marker(pytest.mark.unit)
        elif "/tests/integration/" in path:
            item.add_marker(pytest.mark.integration)
        elif "/tests/e2e/" in path:
            item.add_marker(pytest.mark.e2e)
