"""The Rasa engine's virtual environment (Python 3.10) and the Debian packages tests need."""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from rich.console import Console

from bot.config import Settings
from bot.ops.commands import run_logged
from bot.ops.errors import OperationError

RASA_VERSION = "3.6.21"
RASA_REQUIREMENTS = Path("requirements") / "rasa.txt"
CHROMIUM_PATH = Path("/usr/bin/chromium")
# Headless Chromium for tests and benchmarks: its own background traffic (updates, sync,
# QUIC probes) is refused on a closed network, so it is switched off.
CHROMIUM_HEADLESS_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
REDIS_SERVER_PATH = Path("/usr/bin/redis-server")
# Debian's server binaries, one folder per major version (package ``postgresql``).
POSTGRES_BIN_GLOB = "/usr/lib/postgresql/*/bin"
_STAMP = ".concierge-requirements.sha256"


def find_python310() -> Path:
    """Find a Python 3.10 interpreter for the Rasa engine.

    Looks at ``CONCIERGE_PYTHON310``, then pyenv's installed versions, then the PATH.

    Raises:
        OperationError: No Python 3.10 is installed.
    """
    explicit = os.environ.get("CONCIERGE_PYTHON310")
    candidates: list[str] = [explicit] if explicit else []
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/3.10*/bin/python3.10"), reverse=True)
    candidates += ["/usr/bin/python3.10", "/usr/local/bin/python3.10"]
    for candidate in candidates:
        if candidate and _is_python310(Path(candidate)):
            return Path(candidate)
    raise OperationError(
        "Rasa 3.6 needs Python 3.10, and none was found.",
        hint="install Python 3.10 (e.g. `pyenv install 3.10`) or set CONCIERGE_PYTHON310",
    )


def _is_python310(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        result = subprocess.run(
            [str(path), "-c", "import sys; print(sys.version_info[:2] == (3, 10))"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.stdout.strip() == "True"


def rasa_executable(settings: Settings) -> Path:
    """Path of the ``rasa`` command inside the engine's virtual environment."""
    return settings.rasa_venv / "bin" / "rasa"


def requirements_digest(settings: Settings) -> str:
    """Hash of the engine's requirements file, so a changed pin reinstalls."""
    return hashlib.sha256((settings.project_root / RASA_REQUIREMENTS).read_bytes()).hexdigest()


def rasa_environment_ready(settings: Settings) -> bool:
    """Whether the engine's venv exists and was installed from the current requirements."""
    stamp = settings.rasa_venv / _STAMP
    return (
        rasa_executable(settings).exists()
        and stamp.exists()
        and stamp.read_text().strip() == requirements_digest(settings)
    )


def ensure_rasa_environment(settings: Settings, console: Console) -> None:
    """Create ``.venv-rasa`` on Python 3.10 and install the pinned Rasa into it (idempotent)."""
    if rasa_environment_ready(settings):
        console.print(
            f"[green]✓[/] Rasa {RASA_VERSION} environment is ready ({settings.rasa_venv})"
        )
        return
    python = find_python310()
    logs = settings.log_dir
    if not (settings.rasa_venv / "bin" / "python").exists():
        run_logged(
            [python, "-m", "venv", settings.rasa_venv],
            console=console,
            title="Creating the Rasa environment (Python 3.10)",
            log_path=logs / "setup-rasa-venv.log",
        )
    pip = settings.rasa_venv / "bin" / "pip"
    run_logged(
        [pip, "install", "--upgrade", "pip"],
        console=console,
        title="Upgrading pip in the Rasa environment",
        log_path=logs / "setup-rasa-pip.log",
    )
    run_logged(
        [pip, "install", "-r", settings.project_root / RASA_REQUIREMENTS],
        console=console,
        title=f"Installing Rasa {RASA_VERSION} (about 80 s, 2.7 GB)",
        log_path=logs / "setup-rasa-install.log",
    )
    (settings.rasa_venv / _STAMP).write_text(requirements_digest(settings))


def rasa_version(settings: Settings) -> str | None:
    """The installed Rasa version in the engine's venv, or None when it is not installed."""
    python = settings.rasa_venv / "bin" / "python"
    if not python.exists():
        return None
    result = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('rasa'))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.stdout.strip() or None


def postgres_bin_dir() -> Path | None:
    """The newest installed PostgreSQL server's ``bin`` folder (with ``initdb``), if any."""
    found = [Path(path) for path in glob.glob(POSTGRES_BIN_GLOB) if Path(path, "initdb").exists()]
    return max(
        found,
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else -1,
        default=None,
    )


# Debian packages the tests need, by the file each installs.
TEST_PACKAGES: dict[str, Path] = {
    "chromium": CHROMIUM_PATH,  # browser tests (Playwright drives Debian's build)
    "redis-server": REDIS_SERVER_PATH,  # the Redis broker between bot-service replicas
}


def ensure_test_packages(console: Console, *, log_dir: Path) -> None:
    """Install the Debian packages the tests need (chromium, redis-server, postgresql).

    Raises:
        OperationError: One is missing and cannot be installed (not root, or apt failed).
    """
    missing = [name for name, path in TEST_PACKAGES.items() if not path.exists()]
    postgres = postgres_bin_dir()  # the PostgreSQL tier (tests/integration/postgres/)
    if postgres is None:
        missing.append("postgresql")
    if not missing:
        console.print(
            "[green]✓[/] Test packages are installed ("
            + ", ".join(str(path) for path in [*TEST_PACKAGES.values(), postgres])
            + ")"
        )
        return
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise OperationError(
            f"The tests need Debian's {', '.join(missing)}.",
            hint=f"run `sudo apt-get install {' '.join(missing)}` and try again",
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run_logged(
        [apt, "update", "-q"],
        console=console,
        title="Updating Debian package lists",
        log_path=log_dir / "setup-apt-update.log",
        env=env,
    )
    run_logged(
        [apt, "install", "-y", "-q", "--no-install-recommends", *missing],
        console=console,
        title=f"Installing {', '.join(missing)} (Debian packages) for the tests",
        log_path=log_dir / "setup-apt-test-packages.log",
        env=env,
    )
