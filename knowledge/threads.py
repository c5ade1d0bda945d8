"""Native thread settings for a process that serves search requests (the action server).

Why: faiss, torch and onnxruntime each start their own native thread pools sized to the
machine's cores. In a request-serving process on a small machine they spin against each
other and against the other requests: on this project's 2-core machine a faiss search over
10,000 vectors took 24 ms on faiss's default of two OpenMP threads once torch was loaded in
the same process, and 1 ms on one thread. One query is far too small to gain from several
threads; the process gains from serving several requests at once instead.

What :func:`limit_native_threads` sets (call it once, when the process creates its
knowledge base, before the first search):

* ``OMP_NUM_THREADS`` in the environment, for OpenMP runtimes that load later (faiss's
  and torch's read it when they start);
* faiss's OpenMP threads (``faiss.omp_set_num_threads``). OpenMP keeps this number *per
  calling thread*, and searches run in worker threads (``asyncio.to_thread``), so
  :func:`apply_in_this_thread` sets it again, once, in every thread that searches
  (``KnowledgeIndex.search`` calls it);
* torch's intra-op threads (``torch.set_num_threads``), only if torch is already loaded:
  this never imports torch;
* numpy's BLAS threads (OpenBLAS, through ``threadpoolctl``): the classifier head's
  matrix products (``knowledge.head``) run there;
* onnxruntime's intra-op threads: sessions created afterwards (the ONNX query encoder)
  read :func:`thread_limit` for ``SessionOptions.intra_op_num_threads``.

:func:`native_thread_report` reads back what is in force in the calling thread; the live
knowledge base logs it after its first search (``native threads {...}`` in the action
server's log).

Batch jobs (``kb build``, set-up, benchmarks) do not call this and keep the libraries'
defaults.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = [
    "DEFAULT_SERVING_THREADS",
    "apply_in_this_thread",
    "blas_threads",
    "limit_native_threads",
    "native_thread_report",
    "thread_limit",
]

logger = logging.getLogger(__name__)

DEFAULT_SERVING_THREADS = 1

_limit: int | None = None
_generation = 0
_applied = threading.local()
_lock = threading.Lock()


def limit_native_threads(threads: int = DEFAULT_SERVING_THREADS) -> None:
    """Limit faiss, torch and onnxruntime to ``threads`` threads each, for this process.

    Safe to call more than once; the last call wins. Never imports torch.

    Args:
        threads: Threads per library (1 for a request-serving process).

    Raises:
        ValueError: If ``threads`` is below 1.
    """
    global _limit, _generation
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    with _lock:
        _limit = threads
        _generation += 1
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    _limit_blas(threads)
    apply_in_this_thread()
    logger.info("Native thread pools limited to %d thread(s) each", threads)


def _limit_blas(threads: int) -> None:
    """Limit the BLAS libraries already loaded (numpy's OpenBLAS); process-wide."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - installed with scikit-learn
        logger.warning("threadpoolctl is missing; numpy's BLAS threads are not limited")
        return
    threadpool_limits(limits=threads, user_api="blas")


@contextmanager
def blas_threads(threads: int = 1) -> Iterator[None]:
    """Limit numpy's BLAS threads inside a ``with`` block (process-wide while it runs).

    Why: the classifier head's training (scikit-learn's lbfgs on many small matrix
    products) took 7.5 s on OpenBLAS's two threads on this project's busy 2-core machine
    and 0.23 s on one (509 vectors, 46 articles); a publish trains it every time.

    Args:
        threads: BLAS threads inside the block.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - installed with scikit-learn
        yield
        return
    with threadpool_limits(limits=threads, user_api="blas"):
        yield


def _blas_threads() -> int | None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover
        return None
    counts = [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]
    return max(counts) if counts else None


def thread_limit() -> int | None:
    """Return the limit set by :func:`limit_native_threads`, or ``None`` if none was set."""
    return _limit


def apply_in_this_thread() -> None:
    """Apply the limit to faiss's OpenMP threads in the calling thread (once per thread).

    OpenMP keeps its thread count per calling thread, so a limit set in the thread that
    created the knowledge base does not reach the worker threads that search. Costs one
    attribute lookup after the first call in a thread; does nothing without a limit.
    """
    limit = _limit
    if limit is None or getattr(_applied, "generation", None) == _generation:
        return
    try:
        import faiss  # already loaded where searches run: a dictionary lookup
    except ImportError:  # pragma: no cover - faiss is a hard dependency
        return
    faiss.omp_set_num_threads(limit)
    _applied.generation = _generation


def native_thread_report(encoder: object | None = None) -> dict[str, Any]:
    """Return the thread settings in force in the calling thread.

    Args:
        encoder: The query encoder; its ``intra_op_threads`` attribute (ONNX encoders
            have one) is reported.

    Returns:
        ``limit``, ``faiss_omp_threads`` (``None`` if faiss is not loaded),
        ``torch_loaded``, ``torch_threads`` (``None`` if torch is not loaded),
        ``blas_threads`` (numpy's BLAS) and ``onnxruntime_intra_op_threads`` (``None``
        without an ONNX encoder).
    """
    faiss = sys.modules.get("faiss")
    torch = sys.modules.get("torch")
    return {
        "limit": _limit,
        "faiss_omp_threads": None if faiss is None else int(faiss.omp_get_max_threads()),
        "torch_loaded": torch is not None,
        "torch_threads": None if torch is None else int(torch.get_num_threads()),
        "blas_threads": _blas_threads(),
        "onnxruntime_intra_op_threads": getattr(encoder, "intra_op_threads", None),
    }


def _reset_for_tests() -> None:
    """Forget the limit (tests only); the libraries keep what they were set to."""
    global _limit, _generation
    with _lock:
        _limit = None
        _generation += 1
