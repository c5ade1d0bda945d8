"""Run long external commands with a live progress line and a full log file."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from rich.console import Console

from bot.ops.errors import OperationError

logger = logging.getLogger(__name__)


def tail(path: Path, lines: int = 25) -> str:
    """Return the last ``lines`` lines of a text file (empty if it does not exist)."""
    try:
        content = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    return "\n".join(content[-lines:])


def run_logged(
    argv: Sequence[str | Path],
    *,
    console: Console,
    title: str,
    log_path: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> float:
    """Run ``argv`` to completion, showing a spinner with elapsed time; output goes to ``log_path``.

    Args:
        argv: The command line.
        console: Where progress is shown.
        title: What the step is, e.g. "Installing Rasa 3.6.21".
        log_path: File that receives the command's stdout and stderr.
        cwd: Working directory.
        env: Full environment for the command (defaults to this process's).

    Returns:
        The seconds the command took.

    Raises:
        OperationError: The command exited non-zero; the message carries the log's tail.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log_path.open("w", encoding="utf-8") as log_file:
        log_file.write(f"$ {' '.join(str(part) for part in argv)}\n")
        log_file.flush()
        process = subprocess.Popen(
            [str(part) for part in argv],
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        with console.status(f"{title}…") as status:
            while process.poll() is None:
                status.update(f"{title}… {time.monotonic() - started:.0f} s (log: {log_path})")
                time.sleep(0.5)
    elapsed = time.monotonic() - started
    if process.returncode != 0:
        raise OperationError(
            f"{title} failed (exit {process.returncode}) after {elapsed:.0f} s. "
            f"Last lines of {log_path}:\n{tail(log_path)}",
            hint=f"read the full log: {log_path}",
        )
    console.print(f"[green]✓[/] {title} ({elapsed:.0f} s)")
    return elapsed
