"""What a newcomer pays: set-up time and disk on a clean clone, training, time to first answer.

Clones the current commit (HEAD) into a temporary folder, then times:
1. ``make setup`` there: both virtual environments, model check, database, index, training;
2. ``python -m bot train --force``: Rasa training alone;
3. ``python -m bot run`` until a question sent over the websocket is answered.
Disk is measured on the clone (venvs, index, model included). Slow: several minutes.

Usage:
    python -m bench.setup_cost [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import websockets

from bench.common import emit
from bot.constants import PROJECT_ROOT
from bot.ops.stack import free_port


def _timed(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> float:
    started = time.monotonic()
    with log.open("w") as out:
        subprocess.run(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, check=True)
    return time.monotonic() - started


def _disk_mb(path: Path) -> float:
    result = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True, check=True)
    return float(result.stdout.split()[0])


async def _first_answer(web_port: int, deadline: float) -> None:
    """Retry until the chat answers a question (the stack may still be starting)."""
    while time.monotonic() < deadline:
        try:
            async with websockets.connect(f"ws://127.0.0.1:{web_port}/ws/chat") as socket:
                await socket.send(json.dumps({"type": "hello"}))
                await socket.send(
                    json.dumps({"type": "message", "text": "how long does delivery take?"})
                )
                while True:
                    frame = json.loads(await asyncio.wait_for(socket.recv(), timeout=60))
                    if frame.get("type") == "message" and frame.get("role") == "bot":
                        return
        except (OSError, websockets.WebSocketException, TimeoutError):
            await asyncio.sleep(0.5)
    raise TimeoutError("no answer within the deadline")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its JSON line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keep", action="store_true", help="keep the clone for inspection")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="concierge-setup-cost-"))
    clone = tmp / "concierge"
    logs = tmp / "logs"
    logs.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONCIERGE_", "VIRTUAL_ENV"))}
    try:
        subprocess.run(["git", "clone", "-q", str(PROJECT_ROOT), str(clone)], check=True)
        setup_seconds = _timed(["make", "setup"], clone, env, logs / "setup.log")
        disk_mb = _disk_mb(clone)
        python = str(clone / ".venv" / "bin" / "python")
        train_seconds = _timed(
            [python, "-m", "bot", "train", "--force"], clone, env, logs / "train.log"
        )

        ports = {"RASA": free_port(), "ACTION": free_port(), "WEB": free_port()}
        run_env = {**env, **{f"CONCIERGE_{k}_PORT": str(v) for k, v in ports.items()}}
        started = time.monotonic()
        with (logs / "run.log").open("w") as out:
            run = subprocess.Popen(
                [python, "-m", "bot", "run"],
                cwd=clone,
                env=run_env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            try:
                asyncio.run(_first_answer(ports["WEB"], started + 300))
                first_answer_seconds = time.monotonic() - started
            finally:
                run.send_signal(signal.SIGINT)
                run.wait(timeout=60)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    emit(
        {
            "benchmark": "setup_cost",
            "setup_seconds": round(setup_seconds),
            "disk_mb": round(disk_mb),
            "train_seconds": round(train_seconds),
            "run_to_first_answer_seconds": round(first_answer_seconds, 1),
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
