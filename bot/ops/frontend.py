"""The web pages' browser libraries (htmx, Chart.js, axe-core), installed from npm by set-up.

Exact versions are pinned in ``bot/web/frontend/package-lock.json``; ``npm ci`` installs them
into ``bot/web/frontend/node_modules``, which the bot service serves under ``/static/vendor``
(see ``bot/web/vendor.py``). Browsers never fetch anything from outside.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from rich.console import Console

from bot.config import Settings
from bot.ops.commands import run_logged
from bot.ops.errors import OperationError
from bot.web.vendor import VENDOR_FILES

FRONTEND_DIR = Path("bot") / "web" / "frontend"
_STAMP = ".concierge-lock.sha256"


def frontend_dir(settings: Settings) -> Path:
    """The folder holding ``package.json``, ``package-lock.json`` and ``node_modules``."""
    return settings.project_root / FRONTEND_DIR


def lock_digest(settings: Settings) -> str:
    """Hash of ``package-lock.json``, so a changed pin reinstalls."""
    return hashlib.sha256((frontend_dir(settings) / "package-lock.json").read_bytes()).hexdigest()


def frontend_packages_ready(settings: Settings) -> bool:
    """Whether ``node_modules`` was installed from the current lock file and has every served file.

    npm writes ``node_modules/.package-lock.json`` after an install; our stamp next to it holds
    the hash of the ``package-lock.json`` that install came from (``npm ci`` removes both).
    """
    node_modules = frontend_dir(settings) / "node_modules"
    stamp = node_modules / _STAMP
    return (
        (node_modules / ".package-lock.json").is_file()
        and stamp.is_file()
        and stamp.read_text().strip() == lock_digest(settings)
        and all((node_modules / relative).is_file() for relative in VENDOR_FILES.values())
    )


def installed_versions(settings: Settings) -> dict[str, str | None]:
    """Each package named in ``package.json`` with its installed version (None: not installed)."""
    folder = frontend_dir(settings)
    wanted = json.loads((folder / "package.json").read_text(encoding="utf-8"))["dependencies"]
    versions: dict[str, str | None] = {}
    for name in sorted(wanted):
        manifest = folder / "node_modules" / name / "package.json"
        try:
            versions[name] = str(json.loads(manifest.read_text(encoding="utf-8"))["version"])
        except (FileNotFoundError, KeyError, ValueError):
            versions[name] = None
    return versions


def ensure_frontend_packages(settings: Settings, console: Console) -> None:
    """Install the pinned browser libraries with ``npm ci`` unless already installed (idempotent).

    Raises:
        OperationError: npm is not installed, or ``npm ci`` failed (the message has its log).
    """
    folder = frontend_dir(settings)
    if frontend_packages_ready(settings):
        console.print(f"[green]✓[/] Front-end packages are installed ({_describe(settings)})")
        return
    npm = shutil.which("npm")
    if npm is None:
        raise OperationError(
            "The web pages' browser libraries (htmx, Chart.js, axe-core) are installed with "
            "npm, and npm was not found.",
            hint="install Node.js with npm (e.g. `sudo apt-get install npm`) and run "
            "`python -m bot setup` again",
        )
    run_logged(
        [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--prefix", folder],
        console=console,
        title="Installing the front-end packages from npm",
        log_path=settings.log_dir / "setup-npm.log",
        cwd=settings.project_root,
    )
    (folder / "node_modules" / _STAMP).write_text(lock_digest(settings))
    missing = [r for r in VENDOR_FILES.values() if not (folder / "node_modules" / r).is_file()]
    if missing:
        raise OperationError(
            f"npm installed the front-end packages, but these files are missing: "
            f"{', '.join(missing)}.",
            hint="update VENDOR_FILES in bot/web/vendor.py to the installed packages' file names",
        )


def _describe(settings: Settings) -> str:
    return ", ".join(
        f"{name} {version or 'missing'}" for name, version in installed_versions(settings).items()
    )
