"""knowledge.threads: one place that limits faiss/torch/onnxruntime threads for serving."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from knowledge import threads
from knowledge.articles import load_articles
from knowledge.index import KnowledgeIndex
from knowledge.store import LiveKnowledgeBase, publish
from tests.helpers.probe import run_python


@pytest.fixture(autouse=True)
def _forget_limit(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # restored afterwards
    threads._reset_for_tests()
    yield
    threads._reset_for_tests()


def in_new_thread(function):
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("value", function()))
    worker.start()
    worker.join()
    return result["value"]


def test_limit_sets_env_and_faiss_in_this_thread() -> None:
    import faiss

    threads.limit_native_threads(1)

    assert threads.thread_limit() == 1
    assert os.environ["OMP_NUM_THREADS"] == "1"
    assert faiss.omp_get_max_threads() == 1
    report = threads.native_thread_report()
    assert report["faiss_omp_threads"] == 1
    assert report["blas_threads"] == 1  # numpy's OpenBLAS, process-wide


def test_searching_threads_get_the_limit(articles_dir: Path, encoder) -> None:
    """OpenMP thread counts are per thread: the search applies the limit where it runs."""
    import faiss

    index = KnowledgeIndex.build(load_articles(articles_dir), encoder)
    threads.limit_native_threads(1)

    def search_then_read() -> int:
        index.search("password", 1)
        return int(faiss.omp_get_max_threads())

    assert in_new_thread(search_then_read) == 1


def test_without_a_limit_search_leaves_threads_alone(articles_dir: Path, encoder) -> None:
    import faiss

    index = KnowledgeIndex.build(load_articles(articles_dir), encoder)
    default = in_new_thread(lambda: int(faiss.omp_get_max_threads()))

    def search_then_read() -> int:
        index.search("password", 1)
        return int(faiss.omp_get_max_threads())

    assert in_new_thread(search_then_read) == default


def test_rejects_zero() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        threads.limit_native_threads(0)


def test_limit_never_imports_torch() -> None:
    probe = (
        "import sys, json\n"
        "from knowledge.threads import limit_native_threads, native_thread_report\n"
        "limit_native_threads()\n"
        "import faiss\n"
        "from knowledge.threads import apply_in_this_thread\n"
        "apply_in_this_thread()\n"
        "print(json.dumps([('torch' in sys.modules), native_thread_report()]))\n"
    )
    result = run_python(probe)

    assert result.returncode == 0, result.stderr
    torch_loaded, report = json.loads(result.stdout)
    assert torch_loaded is False
    assert report["torch_loaded"] is False
    assert report["faiss_omp_threads"] == 1
    assert report["limit"] == 1


def test_live_knowledge_base_logs_the_settings_once_per_searching_thread(
    articles_dir: Path, encoder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    publish(KnowledgeIndex.build(load_articles(articles_dir), encoder), tmp_path / "index")
    live = LiveKnowledgeBase(tmp_path / "index", encoder)
    threads.limit_native_threads(1)
    caplog.set_level(logging.INFO, logger="knowledge.store")

    live.search("password", 1)
    live.search("password", 1)
    in_new_thread(lambda: live.search("parcel", 1))

    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("native threads")]
    assert len(lines) == 2
    reports = [json.loads(line.removeprefix("native threads ")) for line in lines]
    assert [r["faiss_omp_threads"] for r in reports] == [1, 1]
    assert reports[0]["thread"] != reports[1]["thread"]
