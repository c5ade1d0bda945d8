"""Frustration detection on our labelled chat messages: precision, recall and F1.

Two files of realistic Kestrel Home & Office support messages, each line
``{"text": ..., "earlier": [...], "frustrated": true|false}`` (``earlier``: the customer's
previous messages in the conversation, oldest first):

- ``bench/data/frustration/test.jsonl`` (104 messages) was written and frozen first; its
  sha256 is recorded here and checked on every run, and its errors are never shown, so the
  rules cannot be tuned on it;
- ``bench/data/frustration/tune.jsonl`` (153 messages) is the part the rules were tuned on.

The positive class is "frustrated". Figures are printed for both parts, then one JSON line.

Usage:
    python -m bench.frustration
    python -m bench.frustration --show-tune-errors
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import emit
from bot.handoff.frustration import DEFAULT_THRESHOLD, detect_frustration

DATA_DIR = Path(__file__).resolve().parent / "data" / "frustration"
TEST_FILE = DATA_DIR / "test.jsonl"
TUNE_FILE = DATA_DIR / "tune.jsonl"
TEST_SHA256 = "18599d5e83f4dba6aea3d85bf0892464de852ecfc921d043ab6d0a213c207b74"
"""sha256 of test.jsonl as frozen before any rule was written."""


@dataclass(frozen=True)
class Example:
    """One labelled message."""

    text: str
    earlier: tuple[str, ...]
    frustrated: bool


@dataclass(frozen=True)
class Scores:
    """Confusion counts for the positive class "frustrated"."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float:
        """Share of flagged messages that are frustrated."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        """Share of frustrated messages that are flagged."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_examples(path: Path) -> list[Example]:
    """Read a JSONL file of labelled messages."""
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row.get("text"), str) or not isinstance(row.get("frustrated"), bool):
            raise SystemExit(f"{path}:{number}: needs a string 'text' and a boolean 'frustrated'")
        examples.append(
            Example(
                text=row["text"],
                earlier=tuple(row.get("earlier") or ()),
                frustrated=row["frustrated"],
            )
        )
    return examples


def evaluate(
    examples: Sequence[Example], threshold: float
) -> tuple[Scores, list[tuple[Example, float, tuple[str, ...]]]]:
    """Run the detector on every example; return the counts and the misclassified ones."""
    tp = fp = fn = tn = 0
    errors = []
    for example in examples:
        result = detect_frustration(
            example.text, earlier_customer_texts=example.earlier, threshold=threshold
        )
        if result.frustrated and example.frustrated:
            tp += 1
        elif result.frustrated:
            fp += 1
        elif example.frustrated:
            fn += 1
        else:
            tn += 1
        if result.frustrated != example.frustrated:
            errors.append((example, result.score, result.cues))
    return Scores(tp=tp, fp=fp, fn=fn, tn=tn), errors


def _report(name: str, examples: Sequence[Example], scores: Scores) -> None:
    positives = sum(example.frustrated for example in examples)
    print(
        f"{name:<5} n={len(examples):<4} frustrated={positives:<3} "
        f"precision={scores.precision:.3f} recall={scores.recall:.3f} f1={scores.f1:.3f} "
        f"(tp={scores.tp} fp={scores.fp} fn={scores.fn} tn={scores.tn})"
    )


def main(argv: list[str] | None = None) -> int:
    """Check the frozen test file, score both parts and print the JSON line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument(
        "--show-tune-errors",
        action="store_true",
        help="list the tune part's misclassified messages (the test part's are never shown)",
    )
    args = parser.parse_args(argv)

    digest = sha256_of(TEST_FILE)
    if digest != TEST_SHA256:
        raise SystemExit(
            f"FROZEN TEST SET CHANGED: {TEST_FILE} has sha256 {digest}, expected {TEST_SHA256}. "
            "The test part must not be edited; restore it with git."
        )

    tune = load_examples(TUNE_FILE)
    test = load_examples(TEST_FILE)
    tune_scores, tune_errors = evaluate(tune, args.threshold)
    started = time.perf_counter()
    test_scores, _ = evaluate(test, args.threshold)
    ms_per_message = (time.perf_counter() - started) * 1000 / len(test)

    print(f"threshold {args.threshold}; test sha256 {digest} (matches the frozen one)")
    _report("tune", tune, tune_scores)
    _report("test", test, test_scores)
    if args.show_tune_errors:
        for example, score, cues in tune_errors:
            kind = "FN" if example.frustrated else "FP"
            print(
                f"{kind} {score:.2f} {list(cues)} {example.text!r} earlier={list(example.earlier)}"
            )

    figures: dict[str, object] = {
        "benchmark": "frustration",
        "threshold": args.threshold,
        "test_sha256": digest,
        "ms_per_message": round(ms_per_message, 3),
    }
    for name, examples, scores in (("tune", tune, tune_scores), ("test", test, test_scores)):
        figures |= {
            f"{name}_n": len(examples),
            f"{name}_precision": round(scores.precision, 4),
            f"{name}_recall": round(scores.recall, 4),
            f"{name}_f1": round(scores.f1, 4),
            f"{name}_tp": scores.tp,
            f"{name}_fp": scores.fp,
            f"{name}_fn": scores.fn,
            f"{name}_tn": scores.tn,
        }
    emit(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
