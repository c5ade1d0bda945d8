"""``ensure_frontend_packages``: npm runs only when the lock file changed or files are missing."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from bot.config import Settings
from bot.ops import frontend
from bot.ops.doctor import check_frontend_packages
from bot.ops.errors import OperationError
from bot.web.vendor import VENDOR_FILES

PACKAGE_JSON = {"name": "t", "private": True, "dependencies": {"htmx.org": "2.0.11"}}
LOCK = {"name": "t", "lockfileVersion": 3, "packages": {"node_modules/htmx.org": {}}}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    folder = tmp_path / frontend.FRONTEND_DIR
    folder.mkdir(parents=True)
    (folder / "package.json").write_text(json.dumps(PACKAGE_JSON))
    (folder / "package-lock.json").write_text(json.dumps(LOCK))
    return Settings(project_root=tmp_path, var_dir=tmp_path / "var")


class FakeNpm:
    """Stands in for ``run_logged``: records each call and lays out what ``npm ci`` would."""

    def __init__(self, settings: Settings, *, files: bool = True) -> None:
        self.settings = settings
        self.files = files
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[Any], **kwargs: Any) -> float:
        self.calls.append([str(part) for part in argv])
        node_modules = frontend.frontend_dir(self.settings) / "node_modules"
        shutil.rmtree(node_modules, ignore_errors=True)  # npm ci starts from scratch
        node_modules.mkdir(exist_ok=True)
        (node_modules / ".package-lock.json").write_text("{}")
        (node_modules / "htmx.org").mkdir()
        (node_modules / "htmx.org" / "package.json").write_text('{"version": "2.0.11"}')
        if self.files:
            for relative in VENDOR_FILES.values():
                (node_modules / relative).parent.mkdir(parents=True, exist_ok=True)
                (node_modules / relative).write_text("/* js */")
        return 0.1


@pytest.fixture
def fake_npm(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> FakeNpm:
    fake = FakeNpm(settings)
    monkeypatch.setattr(frontend, "run_logged", fake)
    monkeypatch.setattr(frontend.shutil, "which", lambda name: f"/usr/bin/{name}")
    return fake


def console() -> Console:
    return Console(quiet=True)


def test_first_run_installs_with_npm_ci(settings: Settings, fake_npm: FakeNpm) -> None:
    frontend.ensure_frontend_packages(settings, console())

    folder = str(frontend.frontend_dir(settings))
    assert fake_npm.calls == [
        ["/usr/bin/npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--prefix", folder]
    ]
    assert frontend.frontend_packages_ready(settings)


def test_second_run_is_skipped(settings: Settings, fake_npm: FakeNpm) -> None:
    frontend.ensure_frontend_packages(settings, console())
    frontend.ensure_frontend_packages(settings, console())

    assert len(fake_npm.calls) == 1


def test_changed_lock_file_reinstalls(settings: Settings, fake_npm: FakeNpm) -> None:
    frontend.ensure_frontend_packages(settings, console())
    lock = frontend.frontend_dir(settings) / "package-lock.json"
    lock.write_text(lock.read_text().replace("2.0.11", "2.0.12") + "\n")

    assert not frontend.frontend_packages_ready(settings)
    frontend.ensure_frontend_packages(settings, console())
    assert len(fake_npm.calls) == 2


def test_a_deleted_served_file_reinstalls(settings: Settings, fake_npm: FakeNpm) -> None:
    frontend.ensure_frontend_packages(settings, console())
    node_modules = frontend.frontend_dir(settings) / "node_modules"
    (node_modules / VENDOR_FILES["htmx.min.js"]).unlink()

    frontend.ensure_frontend_packages(settings, console())
    assert len(fake_npm.calls) == 2


def test_node_modules_from_another_install_is_not_trusted(
    settings: Settings, fake_npm: FakeNpm
) -> None:
    # e.g. a plain `npm install` by hand: npm's hidden lock file exists, our stamp does not
    fake_npm(["npm", "install"])
    assert not frontend.frontend_packages_ready(settings)

    frontend.ensure_frontend_packages(settings, console())
    assert len(fake_npm.calls) == 2
    assert frontend.frontend_packages_ready(settings)


def test_missing_npm_is_a_clear_error(
    settings: Settings, fake_npm: FakeNpm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(frontend.shutil, "which", lambda name: None)

    with pytest.raises(OperationError, match="npm was not found") as raised:
        frontend.ensure_frontend_packages(settings, console())
    assert "apt-get install npm" in raised.value.hint
    assert fake_npm.calls == []


def test_an_install_without_the_served_files_fails_loudly(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(frontend, "run_logged", FakeNpm(settings, files=False))
    monkeypatch.setattr(frontend.shutil, "which", lambda name: "/usr/bin/npm")

    with pytest.raises(OperationError, match=re.escape("htmx.org/dist/htmx.min.js")):
        frontend.ensure_frontend_packages(settings, console())


def test_doctor_reports_versions_or_the_fix(settings: Settings, fake_npm: FakeNpm) -> None:
    before = check_frontend_packages(settings)
    assert (before.ok, before.detail, before.fix) == (False, "not installed", "python -m bot setup")

    frontend.ensure_frontend_packages(settings, console())
    after = check_frontend_packages(settings)
    assert (after.ok, after.detail) == (True, "htmx.org 2.0.11")
