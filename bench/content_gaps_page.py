"""Time the content-gaps page's work end to end on a database of public questions.

A throwaway SQLite database (migrated like production) gets ``--questions`` conversations,
each with one Banking77 test question (real customer wording, none of it about the demo
shop, so nearly all of it is a gap) and the bot's "I don't know" reply; one in ten instead
gets a cited answer and negative feedback. :class:`bot.content_gaps.service.
ContentGapsService` then runs as the page does, with the deployment's live knowledge build
(``python -m bot setup`` makes it): its ONNX query encoder and its index for the nearest
articles. Reported: the collection query alone, the first (cold) computation, a repeat
that the cache answers, and a recomputation after one new question (only it is embedded).

Usage:
    python -m bench.content_gaps_page [--questions 1000]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import random
import tempfile
import time
from pathlib import Path

from bench.common import datasets_dir, emit


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its JSON line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)

    from bot.audit.models import AuditEvent
    from bot.config import get_settings
    from bot.content_gaps.collect import collect_questions
    from bot.content_gaps.service import (
        ContentGapsService,
        live_build_id,
        live_query_encoder,
    )
    from bot.conversations.models import Conversation, Message
    from bot.db.session import create_db_engine, create_session_factory, upgrade_database
    from bot.reports.queries import KB_NO_ANSWER_REPLIES, ReportPeriod
    from knowledge.answering import AnswerPolicy
    from knowledge.store import LiveKnowledgeBase, current_build
    from knowledge.threads import limit_native_threads

    settings = get_settings()
    if current_build(settings.index_dir) is None:
        raise SystemExit(f"no live knowledge build in {settings.index_dir}; run `make setup`")
    limit_native_threads()
    with (datasets_dir() / "banking77" / "test.csv").open(newline="", encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    rng = random.Random(args.seed)
    rng.shuffle(texts)
    texts = texts[: args.questions]

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'gaps.db'}"
        upgrade_database(url)
        engine = create_db_engine(url)
        factory = create_session_factory(engine)
        now = dt.datetime.now(dt.UTC)
        with factory() as session:
            for number, text in enumerate(texts):
                asked = now - dt.timedelta(minutes=len(texts) - number)
                name = f"bench{number:05d}"
                session.add(Conversation(id=name, created_at=asked, updated_at=asked))
                session.flush()
                session.add(
                    Message(conversation_id=name, role="customer", text=text, created_at=asked)
                )
                later = asked + dt.timedelta(seconds=1)
                if number % 10 == 0:
                    cited = {
                        "citation": {"article_id": "refunds-timing", "title": "R", "score": 0.6}
                    }
                    session.add(
                        Message(
                            conversation_id=name,
                            role="bot",
                            text="An answer.",
                            payload=cited,
                            created_at=later,
                        )
                    )
                    session.add(
                        AuditEvent(
                            at=later + dt.timedelta(seconds=1),
                            actor="action_server",
                            action="kb.feedback",
                            conversation_id=name,
                            details={
                                "article_id": "refunds-timing",
                                "outcome": "answered",
                                "helpful": False,
                            },
                        )
                    )
                else:
                    session.add(
                        Message(
                            conversation_id=name,
                            role="bot",
                            text=KB_NO_ANSWER_REPLIES[0],
                            created_at=later,
                        )
                    )
            session.commit()

        service = ContentGapsService(
            encoder_source=lambda: live_query_encoder(settings.index_dir),
            build_probe=lambda: live_build_id(settings.index_dir),
            search=LiveKnowledgeBase(settings.index_dir),
            policy=AnswerPolicy(
                answer_threshold=settings.kb_answer_threshold,
                suggest_threshold=settings.kb_suggest_threshold,
                limit=settings.kb_top_k,
            ),
        )
        build_id, encoder = live_query_encoder(settings.index_dir)
        encoder.encode(["warm up"])  # load the ONNX session: the page's first call pays it once
        with factory() as session:
            started = time.perf_counter()
            collected = collect_questions(session, period=ReportPeriod.last(30, now=now))
            collect_s = time.perf_counter() - started
            started = time.perf_counter()
            gaps = service.gaps(session, days=30, now=now)
            cold_s = time.perf_counter() - started
            started = time.perf_counter()
            service.gaps(session, days=30, now=now)
            cached_s = time.perf_counter() - started
            session.add(
                Message(conversation_id="bench00000", role="customer", text="Do you sell kites?")
            )
            session.add(
                Message(conversation_id="bench00000", role="bot", text=KB_NO_ANSWER_REPLIES[0])
            )
            session.commit()
            started = time.perf_counter()
            service.gaps(session, days=30, now=now)
            one_new_s = time.perf_counter() - started
        engine.dispose()

    emit(
        {
            "benchmark": "content_gaps_page",
            "build": build_id,
            "questions": len(texts),
            "considered": gaps.questions_considered,
            "collected": len(collected.questions),
            "groups_total": gaps.groups_total,
            "groups_shown": len(gaps.groups),
            "largest_group": gaps.groups[0].count if gaps.groups else 0,
            "collect_s": round(collect_s, 3),
            "cold_s": round(cold_s, 3),
            "cached_s": round(cached_s, 3),
            "one_new_question_s": round(one_new_s, 3),
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
