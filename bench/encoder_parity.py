"""ONNX int8 query encoder against torch: same rankings? how much faster and smaller?

One index of the demo articles is built with the torch model (as ``kb build`` does); its
questions (bench/data/demo_kb_questions.yml, 184 in-domain and 30 out-of-domain) are then
encoded once with torch and once with the int8 ONNX export (``python -m bot setup`` makes
it; made in a temporary folder here if the deployment's is missing or stale) and searched
over the same vectors, both through the plain index and through the bot's own path
(``knowledge.answering.answer_question`` for a customer who has not identified
themselves, at the configured thresholds).

Figures: ``top1_agreement`` (plain index, same first article), ``bot_agreement`` (same
band and same answered article), the accuracy of both (``*_index_top1``, ``*_bot_top1``,
``*_answered``, ``*_ood_answered``), the cosine between the two encoders' query vectors,
query-encoding and search latency p50/p95 on one thread (``knowledge.threads`` limits, as
in the action server), and the resident memory of a fresh process that loads the live
index and answers questions with each encoder.

Usage:
    python -m bench.encoder_parity [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

from bench.common import emit, percentile, query_encoder_export
from bench.retrieval import Ranked, answered_correctly, top_k_accuracy
from bot.config import get_settings
from knowledge.answering import BAND_ANSWER, AnswerPolicy, answer_question
from knowledge.articles import load_articles
from knowledge.encoder import Encoder, SentenceTransformerEncoder
from knowledge.index import KnowledgeIndex
from knowledge.onnx_encoder import OnnxEncoder
from knowledge.store import publish
from knowledge.threads import limit_native_threads

QUESTIONS = Path(__file__).resolve().parent / "data" / "demo_kb_questions.yml"
PROJECT_ROOT = Path(__file__).resolve().parent.parent

_RSS_PROBE = """
import json, sys
from pathlib import Path
from knowledge.answering import AnswerPolicy, answer_question
from knowledge.store import LiveKnowledgeBase
from knowledge.threads import limit_native_threads
limit_native_threads()
encoder = None
if sys.argv[2] == "torch":
    from knowledge.encoder import SentenceTransformerEncoder
    encoder = SentenceTransformerEncoder()
live = LiveKnowledgeBase(Path(sys.argv[1]), encoder)
for question in json.loads(sys.argv[3]):
    answer_question(live, question, policy=AnswerPolicy())
rss = 0
for line in open("/proc/self/status"):
    if line.startswith("VmRSS:"):
        rss = int(line.split()[1]) / 1024
print(json.dumps({"rss_mb": round(rss, 1), "torch_loaded": "torch" in sys.modules}))
"""


def _ms(function: Callable[[str], object], text: str) -> float:
    started = time.perf_counter()
    function(text)
    return (time.perf_counter() - started) * 1000


def _latency(
    encoder: Encoder, index: KnowledgeIndex, texts: list[str], repeats: int
) -> dict[str, float]:
    """Milliseconds per query: encoding alone, and a whole search (encoding + faiss)."""
    for text in texts[:20]:  # warm up
        encoder.encode([text])
    encode_ms: list[float] = []
    search_ms: list[float] = []
    for _ in range(repeats):  # consecutive texts differ: no search reuses a cached vector
        for text in texts:
            encode_ms.append(_ms(lambda t: encoder.encode([t]), text))
            search_ms.append(_ms(lambda t: index.search(t, 3), text))
    return {
        "encode_p50_ms": round(percentile(encode_ms, 0.5), 2),
        "encode_p95_ms": round(percentile(encode_ms, 0.95), 2),
        "search_p50_ms": round(percentile(search_ms, 0.5), 2),
        "search_p95_ms": round(percentile(search_ms, 0.95), 2),
    }


def _rss(root: Path, kind: str, questions: list[str]) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, str(root), kind, json.dumps(questions)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its JSON line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=Path, default=QUESTIONS)
    parser.add_argument("--repeats", type=int, default=2, help="latency passes over the set")
    args = parser.parse_args(argv)
    settings = get_settings()
    policy = AnswerPolicy(
        answer_threshold=settings.kb_answer_threshold,
        suggest_threshold=settings.kb_suggest_threshold,
        limit=settings.kb_top_k,
    )
    spec = yaml.safe_load(args.questions.read_text())
    queries: list[tuple[str, str | None]] = [
        (q, article_id) for article_id, qs in spec["in_domain"].items() for q in qs
    ]
    queries += [(q, None) for q in spec["out_of_domain"]]
    texts = [text for text, _ in queries]

    limit_native_threads(1)  # as in the action server
    torch_encoder = SentenceTransformerEncoder()
    torch_encoder.load()
    with tempfile.TemporaryDirectory(prefix="concierge-parity-") as tmp_name:
        tmp = Path(tmp_name)
        export, exported_now = query_encoder_export(tmp, torch_encoder.model_path)
        articles = load_articles(settings.articles_dir)
        torch_index = KnowledgeIndex.build(articles, torch_encoder, query_encoder_dir=export)
        root = tmp / "index"
        build = publish(torch_index, root)
        onnx_index = KnowledgeIndex.load(build)  # the build's own query encoder
        onnx_encoder = onnx_index.encoder
        assert isinstance(onnx_encoder, OnnxEncoder)

        # One question per call, as the action server does (int8 dynamic quantisation
        # scales activations per call: a batch would give each question other vectors).
        singles = np.vstack([onnx_encoder.encode([text]) for text in texts])
        cosines = np.sum(torch_encoder.encode(texts) * singles, axis=1)
        result: dict[str, object] = {
            "benchmark": "encoder_parity",
            "questions": len(queries),
            "ood_questions": sum(expected is None for _, expected in queries),
            "exported_now": exported_now,
            "onnx_model_mb": round((export / "model.int8.onnx").stat().st_size / 1e6, 1),
            "query_cosine_mean": round(float(cosines.mean()), 4),
            "query_cosine_min": round(float(cosines.min()), 4),
        }
        plain: dict[str, list[Ranked]] = {}
        bot: dict[str, list[tuple[str, str | None]]] = {}
        bot_ranked: dict[str, list[Ranked]] = {}
        for name, index in (("torch", torch_index), ("onnx", onnx_index)):
            plain[name], bot[name], bot_ranked[name] = [], [], []
            for text, expected in queries:
                hits = index.search(text, 3)
                plain[name].append(
                    Ranked(
                        expected, tuple(h.article_id for h in hits), tuple(h.score for h in hits)
                    )
                )
                answer = answer_question(index, text, segment=None, policy=policy)
                answered = answer.article.article_id if answer.article else None
                bot[name].append((answer.band, answered))
                bot_ranked[name].append(
                    Ranked(
                        expected,
                        tuple(h.article_id for h in answer.hits),
                        tuple(h.score for h in answer.hits),
                    )
                )
            result[f"{name}_index_top1"] = round(top_k_accuracy(plain[name], 1), 4)
            result[f"{name}_index_top3"] = round(top_k_accuracy(plain[name], 3), 4)
            result[f"{name}_bot_top1"] = round(top_k_accuracy(bot_ranked[name], 1), 4)
            result[f"{name}_answered"] = round(
                answered_correctly(bot_ranked[name], policy.answer_threshold), 4
            )
            result[f"{name}_ood_answered"] = sum(
                band == BAND_ANSWER
                for (band, _), r in zip(bot[name], bot_ranked[name], strict=True)
                if r.expected is None
            )
        same_top1 = [
            a.ids[:1] == b.ids[:1] for a, b in zip(plain["torch"], plain["onnx"], strict=True)
        ]
        result["top1_agreement"] = round(sum(same_top1) / len(same_top1), 4)
        same_bot = [a == b for a, b in zip(bot["torch"], bot["onnx"], strict=True)]
        result["bot_agreement"] = round(sum(same_bot) / len(same_bot), 4)

        for name, index in (("torch", torch_index), ("onnx", onnx_index)):
            for key, value in _latency(index.encoder, index, texts, args.repeats).items():
                result[f"{name}_{key}"] = value
        sample = texts[:: max(1, len(texts) // 20)]
        for kind in ("onnx", "torch"):
            probe = _rss(root, kind, sample)
            result[f"{kind}_process_rss_mb"] = probe["rss_mb"]
            result[f"{kind}_process_torch_loaded"] = probe["torch_loaded"]
    emit(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
