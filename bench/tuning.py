"""The tuned encoder as a retrieval lever (``kb tune``) on Banking77 and CLINC150.

Every figure comes from the library's own ``knowledge.tuning.tune_and_publish`` (what
``kb tune`` runs): the packaged MiniLM fine-tuned on the setting's articles (titles and
alternate questions), exported to ONNX int8, the index rebuilt with it (with the shipped
classifier head) and published into a temporary index root; the published build is then
loaded as the action server loads it (its own ONNX query encoder, one question per call)
and every question decided by ``knowledge.answering.answer_question``.

Columns: ``tuned`` (the tuned encoder, nearest neighbour: the head's weight set to 0) and
``tuned_head`` (the tuned encoder with the shipped head, rerank mode), and with ``--bm25 W``
``tuned_head_bm25`` (the same build with BM25 scores added to the ranking at weight W,
``knowledge.lexical``, as ``KnowledgeIndex.with_ranking`` adds them); for CLINC150 also
answer-or-hand-off at the bot's threshold and at a threshold chosen on val, and the head's
``blend`` score with its threshold chosen on val.

The tune settings (loss, epochs, learning rate) are chosen on val only, once for all
settings (best mean val top-1 of ``tuned_head`` over the selection settings, by default
the two 10-shot ones: the all-data tunes take minutes each); test is reported once.
``kb tune``'s wall time is reported for each setting (Banking77 with all training data is
the ~10,000-question case of the issue's 30-minute cap), and the tuned ONNX query
encoder's latency beside the untuned one's.

Usage:
    python -m bench.tuning [--settings banking77_k10,clinc150_k10,banking77_kall,clinc150_kall]
                           [--select-on banking77_k10,clinc150_k10] [--grid full|small]
                           [--config mnrl:1:2e-05]  # skip the selection
                           [--candidates mnrl:1:2e-5,mnrl:1:2e-5:6]  # :6 = 6 layers frozen
                           [--candidates mnrl:1:2e-5:0:3]  # 3 positive pairs per text
                           [--candidates mnrl:1:2e-5:0:1:topic]  # topic-aware batches
                           [--base-model all-mpnet-base-v2]  # tune the larger encoder
                           [--min-oos-recall 0.60]  # floor of the third threshold rule
                           [--keep var/bench/tuned]  # keep each setting's tuned index root
                           [--bm25 0.1]  # also the published build with BM25 added
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.common import (
    BaseModel,
    add_base_model_argument,
    emit,
    percentile,
    query_encoder_export,
)
from bench.levers import (
    Setting,
    _banking77,
    _clinc150,
    _floor_threshold,
    _in_scope_and_oos,
    _rank,
    _tune_threshold,
)
from bench.retrieval import Ranked, top_k_accuracy
from bot.config import get_settings
from knowledge.answering import AnswerPolicy
from knowledge.editor import threshold
from knowledge.head import DEFAULT_HEAD
from knowledge.index import KnowledgeIndex
from knowledge.lexical import LexicalConfig
from knowledge.onnx_encoder import OnnxEncoder
from knowledge.tuning import TuneConfig, TunePublishResult, tune_and_publish

SETTINGS = ("banking77_k10", "clinc150_k10", "banking77_kall", "clinc150_kall")
# Not run by default: CLINC150 with an out-of-scope article from oos_train (bench.levers)
EXTRA_SETTINGS = ("clinc150_k10_oos", "clinc150_kall_oos")
# (loss, epochs, learning rate, layers frozen, pairs per text, batching)
Spec = tuple[str, int, float, int, int, str]
GRIDS: dict[str, tuple[Spec, ...]] = {
    "full": (
        ("mnrl", 1, 2e-5, 0, 1, "random"),
        ("mnrl", 3, 2e-5, 0, 1, "random"),
        ("mnrl", 1, 5e-5, 0, 1, "random"),
        ("cosine", 1, 2e-5, 0, 1, "random"),
    ),
    "small": (("mnrl", 1, 2e-5, 0, 1, "random"), ("cosine", 1, 2e-5, 0, 1, "random")),
}
LATENCY_QUESTIONS = 300


def _setting(name: str) -> Setting:
    data, rest = name.split("_k")
    k, _, extra = rest.partition("_")
    shots = None if k == "all" else int(k)
    if data == "banking77":
        return _banking77(shots)
    return _clinc150(shots, out_of_scope=extra == "oos")


def _config(spec: Spec, max_minutes: float, seed: int) -> TuneConfig:
    loss, epochs, rate, frozen, per_text, batching = spec
    return TuneConfig(
        loss="cosine" if loss == "cosine" else "mnrl",
        epochs=epochs,
        learning_rate=rate,
        max_minutes=max_minutes,
        seed=seed,
        freeze_layers=frozen,
        pairs_per_text=per_text,
        batching="topic" if batching == "topic" else "random",
    )


def _parse_config(text: str) -> Spec:
    """``LOSS:EPOCHS:LR[:FROZEN[:PAIRS[:BATCHING]]]`` (defaults 0, 1 and ``random``)."""
    loss, epochs, rate, *rest = text.split(":")
    frozen = int(rest[0]) if rest else 0
    per_text = int(rest[1]) if len(rest) > 1 else 1
    batching = rest[2] if len(rest) > 2 else "random"
    if batching not in ("random", "topic"):
        raise argparse.ArgumentTypeError(f"batching must be random or topic, not {batching!r}")
    return loss, int(epochs), float(rate), frozen, per_text, batching


def _key(spec: Spec) -> str:
    """The spec as written, without trailing defaults (``mnrl:1:2e-05``, ``…:0:1:topic``)."""
    loss, epochs, rate, frozen, per_text, batching = spec
    parts, defaults = [str(frozen), str(per_text), batching], ("0", "1", "random")
    while parts and parts[-1] == defaults[len(parts) - 1]:
        parts.pop()
    return ":".join([loss, str(epochs), f"{rate:g}", *parts])


def _tuned(
    articles: list, tmp: Path, config: TuneConfig, base: BaseModel, *, keep: Path | None = None
) -> tuple[KnowledgeIndex, TunePublishResult]:
    if keep is not None:
        keep.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(keep, ignore_errors=True)
    root = keep or Path(tempfile.mkdtemp(prefix="tune-", dir=tmp))
    result = tune_and_publish(
        articles, root, config, head=DEFAULT_HEAD, source_dir=base.path, base_name=base.name
    )
    return KnowledgeIndex.load(result.build_dir), result  # its own ONNX query encoder


def _nn(index: KnowledgeIndex) -> KnowledgeIndex:
    """The same build ranked by the best cosine alone (the head's weight at 0)."""
    return index.with_ranking(head=DEFAULT_HEAD.model_copy(update={"weight": 0.0}))


def _blend(index: KnowledgeIndex) -> KnowledgeIndex:
    return index.with_ranking(head=DEFAULT_HEAD.model_copy(update={"mode": "blend"}))


def _r(value: float | np.floating) -> float:
    return round(float(value), 4)


def _oos_figures(
    val: list[Ranked],
    test: list[Ranked],
    bot_threshold: float,
    prefix: str,
    min_oos_recall: float,
) -> dict[str, float]:
    """In-scope accuracy and out-of-scope recall on test at three thresholds.

    The bot's own, the one with the best sum of the two on val, and the one with the best
    val in-scope accuracy among those whose val out-of-scope recall is ``min_oos_recall``
    or more (``_floor_threshold``).
    """
    tuned = _tune_threshold(val)
    floor = _floor_threshold(val, min_oos_recall)
    at_bot = _in_scope_and_oos(test, bot_threshold)
    at_val = _in_scope_and_oos(test, tuned)
    at_floor = _in_scope_and_oos(test, floor)
    on_val = {
        "val": _in_scope_and_oos(val, tuned),
        "floor": _in_scope_and_oos(val, floor),
        "bot": _in_scope_and_oos(val, bot_threshold),
    }
    return {
        **{f"{prefix}val_in_scope_at_{rule}": _r(v[0]) for rule, v in on_val.items()},
        **{f"{prefix}val_oos_recall_at_{rule}": _r(v[1]) for rule, v in on_val.items()},
        f"{prefix}in_scope_at_bot": _r(at_bot[0]),
        f"{prefix}oos_recall_at_bot": _r(at_bot[1]),
        f"{prefix}val_threshold": tuned,
        f"{prefix}in_scope_at_val": _r(at_val[0]),
        f"{prefix}oos_recall_at_val": _r(at_val[1]),
        f"{prefix}floor_threshold": floor,
        f"{prefix}in_scope_at_floor": _r(at_floor[0]),
        f"{prefix}oos_recall_at_floor": _r(at_floor[1]),
    }


def _latency(
    encoders: dict[str, OnnxEncoder], questions: Sequence[str]
) -> dict[str, dict[str, float]]:
    """p50/p95 of one question per call, the encoders taking turns (same load for each)."""
    times: dict[str, list[float]] = {name: [] for name in encoders}
    for encoder in encoders.values():
        encoder.encode(list(questions[:5]))  # load and warm up
    for question in questions:
        for name, encoder in encoders.items():
            started = time.perf_counter()
            encoder.encode([question])
            times[name].append((time.perf_counter() - started) * 1000)
    return {
        name: {"p50_ms": round(percentile(t, 0.5), 2), "p95_ms": round(percentile(t, 0.95), 2)}
        for name, t in times.items()
    }


def _tune_figures(result: TunePublishResult) -> dict[str, object]:
    return {
        "kb_tune_seconds": round(result.seconds, 1),
        "train_seconds": round(result.tune.seconds, 1),
        "export_seconds": round(result.export_seconds, 1),
        "build_seconds": round(result.build_seconds, 1),
        "pairs": result.tune.pairs,
        "steps": result.tune.steps,
        "planned_steps": result.tune.planned_steps,
        "stopped_by_budget": result.tune.stopped_by_budget,
        "loss_first_last": [result.tune.first_loss, result.tune.last_loss],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its JSON line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--select-on", default="banking77_k10,clinc150_k10")
    parser.add_argument("--grid", choices=sorted(GRIDS), default="full")
    parser.add_argument(
        "--candidates",
        default=None,
        help="comma-separated LOSS:EPOCHS:LR[:FROZEN[:PAIRS[:BATCHING]]] to choose from on "
        "val (instead of --grid); FROZEN: lowest layers kept fixed (kb tune --freeze-layers); "
        "PAIRS: positive pairs per text (kb tune --pairs-per-text); BATCHING: random or "
        "topic (kb tune --batching)",
    )
    parser.add_argument(
        "--config",
        type=_parse_config,
        default=None,
        help="LOSS:EPOCHS:LR[:FROZEN[:PAIRS[:BATCHING]]]",
    )
    parser.add_argument("--max-minutes", type=float, default=25.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--min-oos-recall",
        type=float,
        default=0.60,
        help="out-of-scope recall floor of the third threshold rule, applied on val "
        "(default 0.60, the issue's CLINC150 goal)",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="keep each setting's tuned index root (encoder and builds) under DIR/SETTING",
    )
    parser.add_argument(
        "--bm25",
        type=threshold,
        default=None,
        metavar="WEIGHT",
        help="also report the published build re-ranked with BM25 at this weight, 0 to 1 "
        "as kb build --bm25 takes it (tuned_head_bm25; bench.levers chose 0.1 with the "
        "head on val)",
    )
    add_base_model_argument(parser)
    args = parser.parse_args(argv)
    base = BaseModel(args.base_model)
    names = [n for n in args.settings.split(",") if n]
    if unknown := set(names) - set(SETTINGS) - set(EXTRA_SETTINGS):
        parser.error(f"unknown settings: {', '.join(sorted(unknown))}")
    settings = get_settings()
    bot_threshold = settings.kb_answer_threshold
    policy = AnswerPolicy(
        answer_threshold=bot_threshold, suggest_threshold=settings.kb_suggest_threshold, limit=3
    )
    started = time.monotonic()
    result: dict[str, object] = {"benchmark": "tuning", "seed": args.seed, "base_model": base.name}
    with tempfile.TemporaryDirectory(prefix="concierge-tuning-") as tmp_name:
        tmp = Path(tmp_name)
        setups = {name: _setting(name) for name in names}
        chosen = args.config
        if chosen is None:
            scores: dict[str, list[float]] = {}
            grid = GRIDS[args.grid]
            if args.candidates:
                grid = tuple(_parse_config(c) for c in args.candidates.split(","))
            for spec in grid:
                key = _key(spec)
                for name in [n for n in args.select_on.split(",") if n]:
                    setup = setups.get(name) or _setting(name)
                    index, tuned = _tuned(
                        setup.val_articles, tmp, _config(spec, args.max_minutes, args.seed), base
                    )
                    head_top1 = top_k_accuracy(_rank(index, setup.val, policy), 1)
                    nn_top1 = top_k_accuracy(_rank(_nn(index), setup.val, policy), 1)
                    scores.setdefault(key, []).append(head_top1)
                    result[f"val.{name}.{key}"] = {
                        "tuned_val_top1": _r(nn_top1),
                        "tuned_head_val_top1": _r(head_top1),
                        "kb_tune_seconds": round(tuned.seconds, 1),
                        "steps": tuned.tune.steps,
                    }
                    print(f"val {name} {key}: nn {nn_top1:.4f} head {head_top1:.4f}", flush=True)
            best = max(scores, key=lambda k: float(np.mean(scores[k])))
            result["val_mean_tuned_head_top1"] = {k: _r(np.mean(v)) for k, v in scores.items()}
            chosen = _parse_config(best)
        result["chosen"] = _key(chosen)
        if args.bm25 is not None:
            result["bm25_weight"] = args.bm25
        config = _config(chosen, args.max_minutes, args.seed)

        latency_index: KnowledgeIndex | None = None
        for name, setup in setups.items():
            keep = args.keep / name if args.keep is not None else None
            index, tuned = _tuned(setup.test_articles, tmp, config, base, keep=keep)
            latency_index = latency_index or index
            same = setup.val_articles is setup.test_articles
            entry: dict[str, object] = {**_tune_figures(tuned)}
            variants = {"tuned": _nn(index), "tuned_head": index}
            if args.bm25 is not None:
                bm25 = LexicalConfig(weight=args.bm25)
                variants["tuned_head_bm25"] = index.with_ranking(lexical=bm25)
            ranked: dict[str, tuple[list[Ranked] | None, list[Ranked]]] = {}
            for label, variant in variants.items():
                val_ranked = _rank(variant, setup.val, policy) if same else None
                test_ranked = _rank(variant, setup.test, policy)
                ranked[label] = (val_ranked, test_ranked)
                entry[f"{label}_top1"] = _r(top_k_accuracy(test_ranked, 1))
                entry[f"{label}_recall_at_3"] = _r(top_k_accuracy(test_ranked, 3))
                if val_ranked is not None:
                    entry[f"{label}_val_top1"] = _r(top_k_accuracy(val_ranked, 1))
            if setup.has_oos:
                for label, (val_ranked, test_ranked) in ranked.items():
                    assert val_ranked is not None
                    entry.update(
                        _oos_figures(
                            val_ranked, test_ranked, bot_threshold, f"{label}_", args.min_oos_recall
                        )
                    )
                blend = _blend(index)
                entry.update(
                    _oos_figures(
                        _rank(blend, setup.val, policy),
                        _rank(blend, setup.test, policy),
                        bot_threshold,
                        "tuned_head_blend_",
                        args.min_oos_recall,
                    )
                )
            result[name] = entry
            print(f"test {name}: {entry}", flush=True)

        if latency_index is not None:
            questions = [q for q, _ in next(iter(setups.values())).test][:LATENCY_QUESTIONS]
            export, _ = query_encoder_export(
                tmp, base.path, name=base.name, dimension=base.dimension
            )
            tuned_encoder = latency_index.encoder
            assert isinstance(tuned_encoder, OnnxEncoder)
            result["latency"] = _latency(
                {
                    "untuned": OnnxEncoder(export, threads=1),
                    "tuned": OnnxEncoder(tuned_encoder.directory, threads=1),
                },
                questions,
            )
    result["seconds"] = round(time.monotonic() - started)
    emit(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
