"""What each part of Rasa costs per turn: NLU components, policies, tracker store, actions.

Starts a private action server (loopback, own index), then runs
``python -m rasa_addons.turn_cost`` in Rasa's environment for each variant:

* ``now``: the trained model (``var/models/concierge.tar.gz``) with the speed-ups Rasa
  runs with (``rasa_addons.speedups``);
* ``no_speedups``: the same model with Rasa's own code paths;
* ``with_ted`` (``--with-ted``): a model trained for this run into a temporary folder
  from the same data with the TEDPolicy the project used before (about a minute).

Each variant plays ``--turns`` knowledge questions and ``--turns`` greetings in
conversations of ten turns, in one process, in Rasa's own ``handle_message`` (no HTTP
channel in front). Prints milliseconds per turn for each part and the JSON line.

Usage:
    python -m bench.rasa_cost [--turns 200] [--with-ted]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.common import emit
from bot.config import Settings, get_settings
from bot.ops.setup import prepare_state
from bot.ops.stack import action_server_spec, isolated_settings
from bot.ops.supervisor import Supervisor
from bot.ops.training import model_path, rasa_environment

# The policy block config.yml had until TED was measured out (docs/benchmarks.md).
TED_POLICY = """
  - name: TEDPolicy
    max_history: 5
    epochs: 40
    constrain_similarities: true
    transformer_size:
      dialogue: 64
    batch_size: [128, 256]
    random_seed: 42
"""


def train_with_ted(settings: Settings, folder: Path, console: Console) -> Path:
    """Train the project's data with TEDPolicy added; return the model archive."""
    config = folder / "config-with-ted.yml"
    config.write_text(
        (settings.project_root / "config.yml").read_text(encoding="utf-8").rstrip("\n")
        + "\n"
        + TED_POLICY,
        encoding="utf-8",
    )
    rasa = settings.rasa_venv / "bin" / "rasa"
    with console.status("Training a model with TEDPolicy (about a minute)…"):
        subprocess.run(
            [
                str(rasa),
                "train",
                "--fixed-model-name",
                "with-ted",
                "--out",
                str(folder),
                "--data",
                "data",
                "--domain",
                "domain.yml",
                "--config",
                str(config),
            ],
            cwd=settings.project_root,
            env=rasa_environment(settings),
            check=True,
            capture_output=True,
        )
    return folder / "with-ted.tar.gz"


def probe(settings: Settings, model: Path, *, turns: int, speedups: bool) -> dict[str, Any]:
    """Run ``rasa_addons.turn_cost`` in Rasa's environment and return its figures."""
    argv = [
        str(settings.rasa_venv / "bin" / "python"),
        "-m",
        "rasa_addons.turn_cost",
        str(model),
        settings.action_url,
        "--turns",
        str(turns),
    ]
    if not speedups:
        argv.append("--no-speedups")
    result = subprocess.run(
        argv,
        cwd=settings.project_root,
        env={**rasa_environment(settings), "PYTHONPATH": str(settings.project_root)},
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    """Measure every variant and print the table and the JSON line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--with-ted", action="store_true")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    project = get_settings()
    variants: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="concierge-rasa-cost-") as tmp:
        settings = isolated_settings(project, Path(tmp))
        prepare_state(settings, console)
        with Supervisor(console) as supervisor:
            action_server = supervisor.start(action_server_spec(settings))
            supervisor.wait_until_healthy(show_progress=False)
            if action_server.spec.after_ready is not None:
                action_server.spec.after_ready()
            model = model_path(project)
            with console.status("Measuring the trained model…"):
                variants["now"] = probe(settings, model, turns=args.turns, speedups=True)
                variants["no_speedups"] = probe(settings, model, turns=args.turns, speedups=False)
            if args.with_ted:
                ted_model = train_with_ted(project, Path(tmp), console)
                with console.status("Measuring the model with TEDPolicy…"):
                    variants["with_ted"] = probe(
                        settings, ted_model, turns=args.turns, speedups=True
                    )
    figures = {name: variant["ms_per_turn"] for name, variant in variants.items()}
    for kind in ("knowledge", "greet"):
        parts = sorted({part for variant in figures.values() for part in variant[kind]})
        console.print(f"\n{kind} turn, ms (mean of {args.turns}):")
        console.print("  " + f"{'part':<32}" + "".join(f"{name:>14}" for name in figures))
        for part in parts:
            values = "".join(f"{figures[name][kind].get(part, 0.0):14.2f}" for name in figures)
            console.print(f"  {part:<32}{values}")
    emit({"benchmark": "rasa_cost", "turns": args.turns, "cpu_count": os.cpu_count(), **figures})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
