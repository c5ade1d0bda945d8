"""Scale: a 10,000-article knowledge base built, published, searched and held in memory.

Generates N articles from the public data sets' training queries (Banking77 ``train.csv``,
CLINC150 ``train`` and ``val``): each intent's queries are cut into small groups, and
each group becomes one article whose title is its first query, whose alternate questions
are the next ones and whose body is a short templated paragraph around the last one. The
texts are real customer language; the articles are synthetic (near-duplicates within an
intent), which is fine for time and memory but says nothing about answer quality.

Measured, through the same code the bot and ``kb build`` use (``knowledge.*``):

* full build: reading and validating the articles, encoding (texts/second, MiniLM through
  torch, with a progress bar on a terminal), the faiss index, saving and publishing;
* one-article publish: one article's body changed, ``publish_articles`` with reuse of the
  live build's vectors, then the time a running :class:`LiveKnowledgeBase` needs to load
  the new build (what an action server does after a publish); the same on the demo KB;
* search latency through the bot's decision (``answer_question``: ONNX int8 query
  encoding, faiss, ranking, audience rules) with one native thread, p50/p95 over queries
  from the data sets' test splits (latency only: no accuracy is read from them);
* with ``--bm25 WEIGHT``, the same searches with BM25 added to the same build, and the
  time to set up its BM25 index (what loading a ``kb build --bm25`` build adds);
* resident memory (VmRSS from /proc) of a fresh process holding the live index and having
  answered one question, beside the same process holding the demo KB;
* the build's size on disk;
* the flat / IVF / HNSW crossover: build time, search latency (k=64, one thread, as
  ``KnowledgeIndex.search`` asks) and recall@1/@10 against exact flat search, at several
  sizes. Up to the build's own vector count the vectors are the build's real ones; above
  that they are synthetic (a real vector plus Gaussian noise, renormalised), said in the
  output as ``synthetic``.

Usage:
    python -m bench.scale                      # 10,000 articles, crossover up to 100k
    python -m bench.scale --articles 2000 --sizes 1000,5000 --queries 100
    python -m bench.scale --bm25 0.1 --skip-demo --sizes 10000   # + searches with BM25
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bench.common import datasets_dir, emit, percentile, query_encoder_export

logger = logging.getLogger(__name__)

DEFAULT_ARTICLES = 10_000
DEFAULT_SIZES = (1_000, 5_000, 10_000, 50_000, 100_000)
DEFAULT_QUERIES = 300
MAX_QUERIES_PER_ARTICLE = 4  # title, up to two alternate questions, one in the body
SEARCH_K = 64  # what KnowledgeIndex.search asks faiss for (max(limit * 16, 64))
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
DEMO_ARTICLES_DIR = Path(__file__).resolve().parent.parent / "knowledge" / "articles"


def create_argument_parser() -> argparse.ArgumentParser:
    """Return the benchmark's argument parser."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=DEFAULT_ARTICLES)
    parser.add_argument(
        "--sizes",
        default=",".join(str(size) for size in DEFAULT_SIZES),
        help="vector counts for the flat/IVF/HNSW crossover, comma-separated",
    )
    parser.add_argument("--queries", type=int, default=DEFAULT_QUERIES)
    parser.add_argument("--skip-demo", action="store_true", help="skip the demo KB publish")
    parser.add_argument("--keep", type=Path, default=None, help="keep the work folder here")
    parser.add_argument(
        "--bm25",
        type=float,
        default=None,
        metavar="WEIGHT",
        help="also time searches with BM25 added at this weight (kb build --bm25), on the "
        "same build: the BM25 index's set-up and search p50/p95 as ``search_bm25``",
    )
    return parser


def _slug(text: str) -> str:
    return _NOT_SLUG.sub("-", text.lower()).strip("-")


def _pools() -> tuple[dict[tuple[str, str], list[str]], list[str]]:
    """Training queries by (source, intent), and test queries for latency."""
    pools, tests = _pools_and_labelled_tests()
    return pools, [text for text, _ in tests]


def _pools_and_labelled_tests() -> tuple[
    dict[tuple[str, str], list[str]], list[tuple[str, tuple[str, str]]]
]:
    """Training queries by (source, intent), and test queries with their (source, intent).

    The intent is slugged as in the generated articles' second tag.
    """
    root = datasets_dir()
    pools: dict[tuple[str, str], list[str]] = defaultdict(list)
    with (root / "banking77" / "train.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            pools[("banking77", row["category"])].append(row["text"].strip())
    clinc = json.loads((root / "clinc150" / "data_full.json").read_text(encoding="utf-8"))
    for text, intent in clinc["train"] + clinc["val"]:
        pools[("clinc150", intent)].append(text.strip())
    tests = [(text, ("clinc150", _slug(intent))) for text, intent in clinc["test"]]
    with (root / "banking77" / "test.csv").open(encoding="utf-8") as handle:
        tests += [
            (row["text"].strip(), ("banking77", _slug(row["category"])))
            for row in csv.DictReader(handle)
        ]
    return pools, tests


def generate_articles(count: int, folder: Path) -> dict[str, Any]:
    """Write ``count`` articles made from the data sets' training queries into ``folder``.

    Args:
        count: How many articles (at most half the training queries).
        folder: Where to write them (created).

    Returns:
        How many articles and queries were used.

    Raises:
        SystemExit: If there are not enough queries for ``count`` articles.
    """
    pools, _ = _pools()
    total = sum(len(texts) for texts in pools.values())
    if count * 2 > total:
        raise SystemExit(f"{total} training queries make at most {total // 2} articles")
    folder.mkdir(parents=True, exist_ok=True)
    keys = sorted(pools)
    shares = {key: max(1, round(count * len(pools[key]) / total)) for key in keys}
    while sum(shares.values()) > count:  # rounding: take from the largest shares
        largest = max(keys, key=lambda key: (shares[key], key))
        shares[largest] -= 1
    while sum(shares.values()) < count:
        smallest = min(keys, key=lambda key: (shares[key] / len(pools[key]), key))
        shares[smallest] += 1
    written = 0
    for source, intent in keys:
        share = shares[(source, intent)]
        if share == 0:  # fewer articles than intents: the largest give theirs up
            continue
        texts = pools[(source, intent)][: share * MAX_QUERIES_PER_ARTICLE]
        groups = np.array_split(np.arange(len(texts)), share)
        for number, group in enumerate(groups, start=1):
            group_texts = [texts[i] for i in group]
            if not group_texts:
                continue
            _write_article(folder, source, intent, number, group_texts)
            written += 1
    return {"articles": written, "training_queries": total}


def _write_article(folder: Path, source: str, intent: str, number: int, texts: list[str]) -> None:
    article_id = f"{source}-{_slug(intent)}-{number}"
    topic = intent.replace("_", " ")
    last = texts[-1] if len(texts) > 2 else texts[0]
    body = (
        f"This answer is about {topic} ({source}). A customer asked: {last.rstrip('?.!')}. "
        f"Open the {topic} page in your account to do this yourself, or ask us in chat "
        "and a person will help."
    )
    front = {
        "id": article_id,
        "title": texts[0][:1].upper() + texts[0][1:],
        "audience": "all",
        "tags": [source, _slug(intent)],
        "questions": texts[1:-1] if len(texts) > 2 else texts[1:],
        "language": "en",
        "updated": "2026-11-24",
        "owner": "scale-benchmark",
    }
    dumped = yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=10_000)
    (folder / f"{article_id}.md").write_text(f"---\n{dumped}---\n{body}\n", encoding="utf-8")


def _du_mb(path: Path) -> float:
    total = sum(item.stat().st_size for item in path.rglob("*") if item.is_file())
    return round(total / 1e6, 1)


def _full_build(articles_dir: Path, root: Path, encoder: Any, export: Path) -> dict[str, Any]:
    from knowledge.articles import load_articles
    from knowledge.head import DEFAULT_HEAD
    from knowledge.index import KnowledgeIndex
    from knowledge.store import publish

    started = time.perf_counter()
    digests: dict[str, str] = {}  # as publish_articles: the next publish parses only changes
    articles = load_articles(articles_dir, digests=digests)
    loaded = time.perf_counter()
    index = KnowledgeIndex.build(
        articles,
        encoder,
        progress=sys.stderr.isatty(),
        query_encoder_dir=export,
        head=DEFAULT_HEAD,
        source_digests=digests,
    )
    built = time.perf_counter()
    build_dir = publish(index, root)
    done = time.perf_counter()
    manifest = index.manifest
    return {
        "articles": manifest.article_count,
        "vectors": manifest.vector_count,
        "index_type": manifest.index_type,
        "load_articles_s": round(loaded - started, 2),
        "encode_and_index_s": round(built - loaded, 2),
        "texts_per_s": round(manifest.vector_count / max(built - loaded, 1e-9), 1),
        "save_and_publish_s": round(done - built, 2),
        "total_s": round(done - started, 2),
        "disk_mb": _du_mb(build_dir),
        "disk_mb_without_query_encoder": round(
            _du_mb(build_dir) - _du_mb(build_dir / "query-encoder"), 1
        )
        if (build_dir / "query-encoder").is_dir()
        else _du_mb(build_dir),
    }


def _edit_one_article(articles_dir: Path) -> str:
    path = sorted(articles_dir.glob("*.md"))[len(list(articles_dir.glob("*.md"))) // 2]
    text = path.read_text(encoding="utf-8").rstrip("\n")
    path.write_text(text + " Updated: we now also answer this by phone.\n", encoding="utf-8")
    return path.stem


def _one_article_publish(
    articles_dir: Path, root: Path, encoder: Any, export: Path, live: Any
) -> dict[str, Any]:
    """Change one article, publish with reuse, and time a live knowledge base's reload."""
    from knowledge.store import publish_articles

    article_id = _edit_one_article(articles_dir)
    started = time.perf_counter()
    result = publish_articles(articles_dir, root, encoder, query_encoder_dir=export)
    published = time.perf_counter()
    swapped = live.refresh()
    reloaded = time.perf_counter()
    article = live.article(article_id)
    return {
        "article": article_id,
        "encoded_texts": result.encoded,
        "publish_s": round(published - started, 2),
        "live_reload_s": round(reloaded - published, 2),
        "publish_to_live_s": round(reloaded - started, 2),
        "swapped": swapped,
        "new_content_live": article is not None and "by phone" in article.body,
    }


def _search_latency(live: Any, queries: list[str]) -> dict[str, Any]:
    from knowledge.answering import AnswerPolicy, answer_question
    from knowledge.timing import collecting

    policy = AnswerPolicy()
    answer_question(live, queries[0], policy=policy)  # load the encoder, warm the caches
    totals: list[float] = []
    encodes: list[float] = []
    for query in queries:
        started = time.perf_counter()
        with collecting() as seconds:
            answer_question(live, query, policy=policy)
        totals.append((time.perf_counter() - started) * 1000)
        encodes.append(seconds.get("encode", 0.0) * 1000)
    rest = [total - encode for total, encode in zip(totals, encodes, strict=True)]
    return {
        "queries": len(queries),
        "p50_ms": round(percentile(totals, 0.5), 2),
        "p95_ms": round(percentile(totals, 0.95), 2),
        "encode_p50_ms": round(percentile(encodes, 0.5), 2),
        "search_and_rank_p50_ms": round(percentile(rest, 0.5), 2),
        "search_and_rank_p95_ms": round(percentile(rest, 0.95), 2),
    }


def _bm25_search_latency(live: Any, queries: list[str], weight: float) -> dict[str, Any]:
    """Search latency of the live build ranked with BM25 too, and the BM25 index's set-up.

    ``with_ranking`` scores the build's texts as loading a build made with ``--bm25`` does,
    so ``index_s`` is what an action server adds to each load. Without a head (above
    ``HeadConfig.max_articles``) the ranking then scores every vector with numpy rather
    than asking faiss, and that is part of the figure.
    """
    from knowledge.lexical import LexicalConfig

    config = LexicalConfig(weight=weight)
    started = time.perf_counter()
    ranked = live._current().with_ranking(lexical=config)
    index_s = time.perf_counter() - started
    return {"weight": weight, "index_s": round(index_s, 2), **_search_latency(ranked, queries)}


_RSS_PROBE = """
import json, sys
from pathlib import Path
from knowledge.threads import limit_native_threads
from knowledge.store import LiveKnowledgeBase
limit_native_threads(1)
def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
kb = LiveKnowledgeBase(Path(sys.argv[1]))
kb.search("how do I change my card pin", 3)
print(json.dumps({"rss_mb": rss(), "articles": kb.manifest.article_count}))
"""


def _rss(root: Path) -> dict[str, Any]:
    """RSS of a fresh process holding the live build and having answered one question."""
    completed = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, str(root)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if completed.returncode != 0:
        logger.error("RSS probe failed: %s", completed.stderr[-2000:])
        return {"error": completed.stderr.strip().splitlines()[-1:]}
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def _crossover(real: np.ndarray, queries: np.ndarray, sizes: list[int]) -> list[dict[str, Any]]:
    import faiss

    from knowledge.index import AnnConfig, make_faiss_index

    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    ann = AnnConfig()
    for size in sizes:
        synthetic = max(0, size - len(real))
        if synthetic:
            base = real[rng.integers(0, len(real), size=synthetic)]
            noisy = base + rng.normal(0, 0.03, size=base.shape).astype(np.float32)
            noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
            vectors = np.vstack([real, noisy.astype(np.float32)])
        else:
            vectors = real[np.sort(rng.choice(len(real), size=size, replace=False))]
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        exact: np.ndarray | None = None
        for kind in ("flat", "ivf", "hnsw"):
            faiss.omp_set_num_threads(os.cpu_count() or 1)  # builds are batch jobs
            started = time.perf_counter()
            index, params = make_faiss_index(vectors, vectors.shape[1], kind, ann)
            build_s = time.perf_counter() - started
            faiss.omp_set_num_threads(1)  # searches run on one thread, as served
            latencies = []
            found = np.zeros((len(queries), SEARCH_K), dtype=np.int64)
            for number, query in enumerate(queries):
                began = time.perf_counter()
                _, ids = index.search(query[None, :], SEARCH_K)
                latencies.append((time.perf_counter() - began) * 1000)
                found[number] = ids[0]
            if kind == "flat":
                exact = found
            assert exact is not None
            recall1 = float(np.mean(found[:, 0] == exact[:, 0]))
            recall10 = float(
                np.mean(
                    [len(set(found[i, :10]) & set(exact[i, :10])) / 10 for i in range(len(queries))]
                )
            )
            rows.append(
                {
                    "vectors": size,
                    "synthetic": synthetic,
                    "type": kind,
                    "params": params,
                    "build_s": round(build_s, 2),
                    "p50_ms": round(percentile(latencies, 0.5), 3),
                    "p95_ms": round(percentile(latencies, 0.95), 3),
                    "recall_at_1": round(recall1, 3),
                    "recall_at_10": round(recall10, 3),
                }
            )
            logger.info("crossover %s", rows[-1])
    return rows


def _demo_publish(work: Path, encoder: Any, export: Path) -> dict[str, Any]:
    from knowledge.store import LiveKnowledgeBase, publish_articles

    articles_dir = work / "demo-articles"
    shutil.copytree(DEMO_ARTICLES_DIR, articles_dir)
    root = work / "demo-index"
    publish_articles(articles_dir, root, encoder, query_encoder_dir=export)
    live = LiveKnowledgeBase(root, check_interval=0)
    live.search("how do I return an item", 3)
    result = _one_article_publish(articles_dir, root, encoder, export, live)
    result["rss"] = _rss(root)
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one JSON line of figures."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = create_argument_parser().parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]

    from knowledge.encoder import default_encoder
    from knowledge.store import LiveKnowledgeBase, load_current
    from knowledge.threads import limit_native_threads

    started = time.perf_counter()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"benchmark": "scale", "load_average": os.getloadavg()}
    try:
        encoder = default_encoder()
        encoder.load()
        export, exported = query_encoder_export(work, encoder.model_path)
        result["query_encoder_exported_now"] = exported
        if not args.skip_demo:
            result["demo_publish"] = _demo_publish(work, encoder, export)
            logger.info("demo publish %s", result["demo_publish"])

        articles_dir = work / "articles"
        root = work / "index"
        result["generated"] = generate_articles(args.articles, articles_dir)
        result["full_build"] = _full_build(articles_dir, root, encoder, export)
        logger.info("full build %s", result["full_build"])

        limit_native_threads(1)  # from here on: a serving process's settings
        live = LiveKnowledgeBase(root, check_interval=0)
        _, tests = _pools()
        picks = np.random.default_rng(1).choice(len(tests), size=args.queries, replace=False)
        queries = [tests[int(i)] for i in picks]
        result["search"] = _search_latency(live, queries)
        logger.info("search %s", result["search"])
        if args.bm25 is not None:
            result["search_bm25"] = _bm25_search_latency(live, queries, args.bm25)
            logger.info("search with BM25 %s", result["search_bm25"])
        result["one_article_publish"] = _one_article_publish(
            articles_dir, root, encoder, export, live
        )
        result["second_one_article_publish"] = _one_article_publish(
            articles_dir, root, encoder, export, live
        )
        logger.info("one-article publish %s", result["one_article_publish"])
        result["rss"] = _rss(root)
        logger.info("rss %s", result["rss"])

        index = load_current(root, encoder)
        query_vectors = np.vstack([live._current().encoder.encode([q]) for q in queries])
        query_vectors /= np.linalg.norm(query_vectors, axis=1, keepdims=True)
        result["crossover"] = _crossover(
            index._all_vectors(), query_vectors.astype(np.float32), sizes
        )
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    result["seconds"] = round(time.perf_counter() - started, 1)
    emit(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
