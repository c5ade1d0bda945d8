"""knowledge.timing: stage clocks per thread, only inside ``collecting``."""

from __future__ import annotations

import threading

from knowledge.timing import collecting, timed


def test_stages_add_up_inside_collecting_only() -> None:
    with timed("encode"):
        pass  # outside: nowhere to add to, and no error
    with collecting() as seconds:
        with timed("encode"):
            pass
        with timed("encode"):
            pass
    assert set(seconds) == {"encode"} and seconds["encode"] >= 0


def test_other_threads_do_not_add_to_this_threads_totals() -> None:
    def work() -> None:
        with timed("encode"):
            pass

    with collecting() as seconds:
        worker = threading.Thread(target=work)
        worker.start()
        worker.join()
    assert seconds == {}
