"""Stage clocks for one piece of work in one thread (how long query encoding took).

The library stays free of any logging or reporting policy: code that wants to know how
a search's time splits wraps it in :func:`collecting`, and the library's own stages
(``encode``) add their seconds to the totals of the calling thread. Outside
:func:`collecting` a stage costs two ``perf_counter`` calls.

Usage::

    with collecting() as seconds:
        answer_question(knowledge_base, "where is my parcel?", policy=policy)
    seconds.get("encode", 0.0)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collecting", "timed"]

_local = threading.local()


@contextmanager
def timed(stage: str) -> Iterator[None]:
    """Add the block's duration to ``stage`` in the calling thread's current totals."""
    started = time.perf_counter()
    try:
        yield
    finally:
        totals: dict[str, float] | None = getattr(_local, "totals", None)
        if totals is not None:
            totals[stage] = totals.get(stage, 0.0) + time.perf_counter() - started


@contextmanager
def collecting() -> Iterator[dict[str, float]]:
    """Collect the seconds of every :func:`timed` stage run in this thread inside the block.

    Yields:
        Seconds per stage name, filled in as stages finish.
    """
    previous: dict[str, float] | None = getattr(_local, "totals", None)
    totals: dict[str, float] = {}
    _local.totals = totals
    try:
        yield totals
    finally:
        _local.totals = previous
