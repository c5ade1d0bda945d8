"""Browser libraries are served from the project's own npm install, and nothing else is."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.routing import Mount

from bot.web.vendor import NODE_MODULES, VENDOR_FILES, VendorFiles

JAVASCRIPT_TYPES = ("text/javascript", "application/javascript")


def _installed(name: str) -> bool:
    return (NODE_MODULES / VENDOR_FILES[name]).is_file()


@pytest.mark.parametrize("name", sorted(VENDOR_FILES))
def test_vendor_file_is_served_as_javascript(client: TestClient, name: str) -> None:
    if not _installed(name):
        pytest.skip(f"front-end packages not installed ({NODE_MODULES}): run `python -m bot setup`")

    response = client.get(f"/static/vendor/{name}")

    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] in JAVASCRIPT_TYPES
    assert response.content == (NODE_MODULES / VENDOR_FILES[name]).read_bytes()
    assert "script-src 'self'" in response.headers["content-security-policy"]


@pytest.mark.parametrize(
    "path",
    [
        "/static/vendor/htmx.js",  # in the package, not on the allow-list
        "/static/vendor/htmx.org/dist/htmx.min.js",
        "/static/vendor/htmx.org/package.json",
        "/static/vendor/../../frontend/package.json",
        "/static/vendor/",
    ],
)
def test_anything_not_on_the_allow_list_is_not_found(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_the_app_s_own_static_files_still_work(client: TestClient) -> None:
    assert client.get("/static/chat.js").status_code == 200


def test_a_missing_install_is_a_404_that_says_to_run_setup(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    empty = tmp_path / "node_modules"
    app = Starlette(routes=[Mount("/static/vendor", VendorFiles(node_modules=empty))])

    with caplog.at_level(logging.WARNING, logger="bot.web.vendor"):
        response = TestClient(app).get("/static/vendor/htmx.min.js")

    assert response.status_code == 404
    assert "python -m bot setup" in caplog.text
