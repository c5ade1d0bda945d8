"""The real action server's knowledge runtime: native thread limits in force where it searches.

Starts ``python -m rasa_sdk --actions actions`` (as ``python -m bot run`` does) over a
private var folder whose index was built from four of the project's articles (carrying the
real ONNX int8 query encoder, as ``python -m bot setup`` builds it), calls the
warm-up action and a knowledge question, then ``action_knowledge_runtime_report``, which
searches in a worker thread as questions are and reads back what is in force there from
faiss, torch and onnxruntime (not copied from the settings). The action server's own
log is no help here: Sanic's worker process does not inherit rasa-sdk's logging set-up,
so INFO lines from ``actions``/``knowledge`` never reach it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bot.ops.stack import free_port
from tests.helpers.onnx_export import real_onnx_export
from tests.helpers.trackers import session_start, tracker_state, user

pytestmark = pytest.mark.integration

PROJECT_ROOT = Path(__file__).resolve().parents[3]
ARTICLE_IDS = ("returns-start-a-return", "refunds-timing", "delivery-costs", "orders-track")
STARTUP_TIMEOUT = 60.0
REQUEST_TIMEOUT = 120.0


@dataclass(frozen=True)
class Server:
    url: str
    log_path: Path
    pid: int


def _publish_index(var_dir: Path, export: Path) -> None:
    from knowledge.articles import load_articles
    from knowledge.encoder import SentenceTransformerEncoder
    from knowledge.head import DEFAULT_HEAD
    from knowledge.index import KnowledgeIndex
    from knowledge.store import publish

    articles = [
        a for a in load_articles(PROJECT_ROOT / "knowledge" / "articles") if a.id in ARTICLE_IDS
    ]
    index = KnowledgeIndex.build(
        articles, SentenceTransformerEncoder(), query_encoder_dir=export, head=DEFAULT_HEAD
    )
    assert index.manifest.query_encoder is not None
    publish(index, var_dir / "index")


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    var_dir = tmp_path_factory.mktemp("action-runtime-var")
    _publish_index(var_dir, real_onnx_export(tmp_path_factory))
    port = free_port()
    log_path = var_dir / "actions.log"
    env = {
        **os.environ,
        "CONCIERGE_VAR_DIR": str(var_dir),
        "SANIC_HOST": "127.0.0.1",
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("CONCIERGE_INDEX_DIR", "OMP_NUM_THREADS"):
        env.pop(name, None)  # the server must set its own limits, not inherit ours
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "actions", "--actions", "actions", "--port", str(port)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"action server exited with {process.returncode}:\n{_tail(log_path)}")
            try:
                if httpx.get(f"{url}/health", timeout=2.0).json() == {"status": "ok"}:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"action server not healthy in {STARTUP_TIMEOUT}s:\n{_tail(log_path)}")
            time.sleep(0.25)
        yield Server(url=url, log_path=log_path, pid=process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _call(server: Server, action: str, text: str, sender: str) -> dict[str, Any]:
    domain = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))
    events = [*session_start(), user(text, "ask_question", 0.97)]
    slots: dict[str, Any] = {name: None for name in domain["slots"]}
    slots["kb_attempts"] = 0.0
    body = {
        "next_action": action,
        "sender_id": sender,
        "tracker": tracker_state(events, slots, dict(events[-1]["parse_data"]), sender),
        "domain": domain,
        "version": "3.6.21",
    }
    try:
        response = httpx.post(f"{server.url}/webhook", json=body, timeout=REQUEST_TIMEOUT)
    except httpx.HTTPError as error:
        pytest.fail(f"request failed: {error}\n{_tail(server.log_path)}")
    assert response.status_code == 200, f"{response.text}\n{_tail(server.log_path)}"
    return dict(response.json())


def test_thread_limits_in_force_and_no_torch_where_the_action_server_searches(
    server: Server,
) -> None:
    _call(server, "action_concierge_warm_up", "warm up", "it-warm-up")
    answer = _call(server, "action_answer_from_knowledge", "How do I send back an item?", "it-1")
    reports = [
        _call(server, "action_knowledge_runtime_report", "diagnose", f"it-report-{n}")["responses"][
            0
        ]["custom"]["knowledge_runtime"]
        for n in range(3)
    ]

    assert answer["responses"][0]["custom"]["citation"]["article_id"] == "returns-start-a-return"
    for report in reports:
        assert "error" not in report, report
        assert report["thread"] != "MainThread"  # a worker thread, like every question
        assert report["limit"] == 1
        assert report["faiss_omp_threads"] == 1
        assert report["onnxruntime_intra_op_threads"] == 1
        assert report["blas_threads"] == 1  # the classifier head's matrix products
        # Answering questions with the ONNX query encoder never loads torch.
        assert report["encoder"] == "OnnxEncoder:sentence-transformers/all-MiniLM-L6-v2"
        assert report["torch_loaded"] is False
    print(f"action server after warm-up and questions: {reports[-1]}")


def _children(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task")
    found = []
    for task in tasks.iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def test_the_action_server_is_one_process_under_300_mb_after_answering(server: Server) -> None:
    _call(server, "action_concierge_warm_up", "warm up", "it-mem-warm-up")
    for n, question in enumerate(["How do I send back an item?", "where is my parcel", "refund?"]):
        _call(server, "action_answer_from_knowledge", question, f"it-mem-{n}")

    # `python -m actions` serves rasa-sdk's app without Sanic's manager and helpers.
    assert _children(server.pid) == []
    resident = _resident_mb(server.pid)
    print(f"action server resident after questions: {resident:.0f} MB")
    assert resident <= 300, resident
