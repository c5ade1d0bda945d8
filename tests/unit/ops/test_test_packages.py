"""Which Debian packages `setup --for-tests` installs: PostgreSQL found in any major version."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from bot.ops import environments
from bot.ops.errors import OperationError


def _server(root: Path, version: str, *, initdb: bool = True) -> Path:
    bin_dir = root / version / "bin"
    bin_dir.mkdir(parents=True)
    if initdb:
        (bin_dir / "initdb").write_text("")
    return bin_dir


def test_the_newest_postgres_with_initdb_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(environments, "POSTGRES_BIN_GLOB", str(tmp_path / "*" / "bin"))
    assert environments.postgres_bin_dir() is None
    _server(tmp_path, "9")
    newest = _server(tmp_path, "15")
    _server(tmp_path, "17", initdb=False)  # client only: no server binaries
    assert environments.postgres_bin_dir() == newest


def test_a_missing_postgres_is_named_when_it_cannot_be_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    present = tmp_path / "present"
    present.write_text("")
    monkeypatch.setattr(environments, "TEST_PACKAGES", {"chromium": present})
    monkeypatch.setattr(environments, "POSTGRES_BIN_GLOB", str(tmp_path / "none" / "*"))
    monkeypatch.setattr(environments.os, "geteuid", lambda: 1000)
    with pytest.raises(OperationError) as raised:
        environments.ensure_test_packages(Console(quiet=True), log_dir=tmp_path)
    assert "postgresql" in str(raised.value)
    assert "chromium" not in str(raised.value)


def test_nothing_is_installed_when_every_package_is_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    present = tmp_path / "present"
    present.write_text("")
    monkeypatch.setattr(environments, "TEST_PACKAGES", {"chromium": present})
    monkeypatch.setattr(environments, "POSTGRES_BIN_GLOB", str(tmp_path / "*" / "bin"))
    _server(tmp_path, "15")

    def no_apt(*args: object, **kwargs: object) -> None:
        raise AssertionError("apt-get must not run when everything is installed")

    monkeypatch.setattr(environments, "run_logged", no_apt)
    environments.ensure_test_packages(Console(quiet=True), log_dir=tmp_path)
