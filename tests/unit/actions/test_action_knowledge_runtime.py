"""action_knowledge_runtime_report: what serves searches in the action server's worker threads."""

from __future__ import annotations

import threading
from pathlib import Path

from rasa_sdk.executor import CollectingDispatcher

from actions import deps
from actions.knowledge import ActionKnowledgeRuntimeReport
from knowledge.articles import Article
from knowledge.index import KnowledgeIndex
from knowledge.store import LiveKnowledgeBase, publish
from tests.helpers.fake_encoder import FakeEncoder
from tests.helpers.trackers import build_tracker, conversation, user


async def run_report() -> dict:
    dispatcher = CollectingDispatcher()
    tracker = build_tracker(conversation(user("/diagnose", "diagnose")))
    assert await ActionKnowledgeRuntimeReport().run(dispatcher, tracker, {}) == []
    [message] = dispatcher.messages
    return message["custom"]["knowledge_runtime"]


async def test_reports_from_a_worker_thread_after_a_search(
    articles: dict[str, Article], tmp_path: Path
) -> None:
    encoder = FakeEncoder()
    build = publish(KnowledgeIndex.build(list(articles.values()), encoder), tmp_path / "index")
    deps.set_knowledge_base(LiveKnowledgeBase(tmp_path / "index", encoder))

    report = await run_report()

    assert report["build"] == build.name
    assert report["encoder"] == "FakeEncoder:fake-hashing-encoder"
    assert report["thread"] != threading.current_thread().name
    assert {"limit", "faiss_omp_threads", "torch_loaded", "onnxruntime_intra_op_threads"} <= set(
        report
    )


async def test_a_missing_index_is_reported_not_raised(tmp_path: Path) -> None:
    deps.set_knowledge_base(LiveKnowledgeBase(tmp_path / "nothing", FakeEncoder()))

    report = await run_report()

    assert report["error"].startswith("IndexNotBuiltError")
