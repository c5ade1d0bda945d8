"""Publishing from the knowledge editor: how long from "Publish" to a live build.

Usage:
    .venv/bin/python -m bench.editor_publish [--rounds 5] [--large 2000 [--large-edits 200]]

On a private SQLite database and index root (a temporary folder), with the demo articles
imported as set-up does, through the code the Publish button runs
(:func:`bot.editor.publishing.publish`, which calls :func:`knowledge.store.publish_articles`):

* ``model_load_s``: loading the torch MiniLM in a fresh process (the bot service pays this
  once, in the background, when an editor opens a form);
* ``first_publish_s``: the first publish (every text encoded, the head trained);
* ``one_article_publish_s``: p50 / max over ``--rounds`` publishes that each change one
  article's first paragraph (only its changed texts re-encoded);
* ``preview_p50_s`` / ``preview_max_s``: the edit form's preview of one changed draft
  over five test questions (:func:`bot.editor.preview.preview_answers`, with the live
  build's ONNX query encoder as the bot service uses it): the draft ranked as publishing it
  would rank it, the classifier head trained again;
* ``preview_same_draft_p50_s``: the preview again with other test questions and the same
  draft (the ranked draft is kept);
* with ``--large N``, ``large_preview``: a new article previewed in N generated articles
  with every head row trained again and with only the draft's row fitted (the way of the
  preview and of a publish above ``knowledge.index.HEAD_RETRAIN_MAX_COST``): both times,
  how often the two rank the same article first over 300 of the data sets' test
  questions, and how many of the draft's own title and questions each ranks it first for;
* with ``--large-edits K`` too, ``large_preview.head_drift``: K one-article edits published
  in a row, each fitting only the edited article's head row (the 10 % bound lifted), and
  at K/8, K/2 and K edits how often that build and one with every row trained rank the
  same article first.

Ends with one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot.db.session import create_db_engine, create_session_factory, upgrade_database
from bot.editor import service
from bot.editor.publishing import PublishTarget, publish
from bot.editor.service import Actor


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m bench.editor_publish")
    parser.add_argument("--rounds", type=int, default=5, help="one-article publishes to time")
    parser.add_argument(
        "--large",
        type=int,
        default=0,
        metavar="N",
        help="also preview a new article in a knowledge base of N generated articles (as "
        "bench.scale makes them) both ways: every head row trained again, and only the "
        "draft's row fitted (what the preview and a publish do above HEAD_RETRAIN_MAX_COST)",
    )
    parser.add_argument(
        "--large-edits",
        type=int,
        default=0,
        metavar="K",
        help="with --large: then publish K one-article edits in a row, fitting only the "
        "edited article's head row each time, and compare with training every row at "
        "K/8, K/2 and K edits (how far the kept rows drift)",
    )
    args = parser.parse_args(argv)
    if args.large_edits and not args.large:
        parser.error("--large-edits needs --large N")
    logging.basicConfig(level=logging.WARNING)
    from knowledge.encoder import default_encoder
    from knowledge.onnx_encoder import EXPORT_DIRNAME

    project = Path(__file__).resolve().parents[1]
    encoder = default_encoder()
    started = time.perf_counter()
    encoder.load()
    model_load = time.perf_counter() - started
    actor = Actor.command_line("bench")
    with tempfile.TemporaryDirectory(prefix="bench-editor-") as folder:
        root = Path(folder)
        url = f"sqlite:///{root / 'app.db'}"
        upgrade_database(url)
        engine = create_db_engine(url)
        factory = create_session_factory(engine)
        models_dir = Path(os.environ.get("CONCIERGE_MODELS_DIR", project / "var" / "models"))
        target = PublishTarget(root / "index", models_dir / EXPORT_DIRNAME, lambda: encoder)
        with factory() as session:
            service.import_articles(session, project / "knowledge" / "articles", actor=actor)
        first = publish(factory, target, actor=actor, require_review=False)
        rounds = []
        for number in range(args.rounds):
            with factory() as session:
                latest = service.latest_revision(session, "delivery-international")
                content = dict(latest.content)
                content["body"] = f"Round {number}: we now also ship to Iceland. " + content["body"]
                service.save_revision(
                    session, article_id="delivery-international", content=content, actor=actor
                )
            result = publish(factory, target, actor=actor, require_review=False)
            rounds.append(result.seconds)
        previews, repeats = _time_previews(factory, target.index_dir, args.rounds)
        engine.dispose()
    figures = {
        "benchmark": "editor_publish",
        "articles": first.articles,
        "model_load_s": round(model_load, 2),
        "first_publish_s": round(first.seconds, 2),
        "one_article_publish_p50_s": round(statistics.median(rounds), 2),
        "one_article_publish_max_s": round(max(rounds), 2),
        "rounds": [round(value, 2) for value in rounds],
        "preview_p50_s": round(statistics.median(previews), 3),
        "preview_max_s": round(max(previews), 3),
        "preview_same_draft_p50_s": round(statistics.median(repeats), 3),
        "previews": [round(value, 3) for value in previews],
    }
    if args.large:
        figures["large_preview"] = _large_preview(args.large, encoder, args.large_edits)
    figures["load_average"] = [round(value, 2) for value in os.getloadavg()]
    print(json.dumps(figures))
    return 0


PREVIEW_QUESTIONS = [
    "do you ship to iceland",
    "how long does international delivery take",
    "customs fees on my parcel",
    "where is my order",
    "can i return a sofa",
]


def _time_previews(
    factory: sessionmaker[Session], index_dir: Path, rounds: int
) -> tuple[list[float], list[float]]:
    """Preview ``rounds`` changed drafts, each twice; return both sets of seconds."""
    from bot.editor.preview import PreviewIndex, preview_answers
    from knowledge.answering import AnswerPolicy

    preview = PreviewIndex(index_dir)
    policy = AnswerPolicy()
    with factory() as session:
        content = dict(service.latest_revision(session, "delivery-international").content)
    firsts, repeats = [], []
    for number in range(rounds):
        content["body"] = f"Preview {number}: we now also ship to Greenland. " + content["body"]
        draft = service.validate_content(content)
        started = time.perf_counter()
        preview_answers(preview, draft, PREVIEW_QUESTIONS, policy=policy)
        firsts.append(time.perf_counter() - started)
        started = time.perf_counter()
        preview_answers(preview, draft, PREVIEW_QUESTIONS[::-1], policy=policy)
        repeats.append(time.perf_counter() - started)
    return firsts, repeats


def _large_preview(count: int, encoder: Any, edits: int) -> dict[str, Any]:
    """Preview one new article in ``count`` generated ones, retrained in full and row-only.

    The live build is the generated articles but one (with the shipped head); the draft is
    that one. Both previews are compared on the data sets' test questions the scale
    benchmark times searches with, and on the draft's own title and questions.
    """
    import numpy as np

    from bench.scale import _pools_and_labelled_tests, generate_articles
    from knowledge.articles import load_articles
    from knowledge.head import DEFAULT_HEAD
    from knowledge.index import KnowledgeIndex

    with tempfile.TemporaryDirectory(prefix="bench-preview-") as folder:
        generate_articles(count, Path(folder))
        articles = load_articles(Path(folder))
    draft = articles[len(articles) // 2]
    others = [article for article in articles if article.id != draft.id]
    started = time.perf_counter()
    live = KnowledgeIndex.build(others, encoder, head=DEFAULT_HEAD)
    build_s = time.perf_counter() - started
    timings, indexes = {}, {}
    for name, budget in (("full_retrain", 1 << 62), ("row_refit", 0)):
        started = time.perf_counter()
        indexes[name] = live.with_article(draft, encoder, head_retrain_max_cost=budget)
        timings[name] = time.perf_counter() - started
    _, tests = _pools_and_labelled_tests()
    picks = np.random.default_rng(1).choice(len(tests), size=300, replace=False)
    labelled = [tests[int(pick)] for pick in picks]
    questions = [text for text, _ in labelled]
    own = [draft.title, *draft.questions]

    full, refitted = indexes["full_retrain"], indexes["row_refit"]
    agree = [_first(full, q) == _first(refitted, q) for q in questions]
    drift = _head_drift(live, others, encoder, edits, labelled) if edits else None
    return {
        "articles": count,
        "build_with_head_s": round(build_s, 1),
        "full_retrain_preview_s": round(timings["full_retrain"], 2),
        "row_refit_preview_s": round(timings["row_refit"], 2),
        "top1_agreement_test_questions": round(sum(agree) / len(agree), 3),
        "draft_first_for_own_texts": {
            name: sum(_first(index, text) == draft.id for text in own)
            for name, index in indexes.items()
        },
        "own_texts": len(own),
        "head_drift": drift,
    }


def _first(index: Any, question: str) -> str | None:
    hits = index.search(question, 1)
    return hits[0].article_id if hits else None


def _head_drift(
    live: Any,
    articles: list[Any],
    encoder: Any,
    edits: int,
    labelled: list[tuple[str, tuple[str, str]]],
) -> dict[str, Any]:
    """Publish ``edits`` one-article edits in a row, each fitting only the edited row.

    Each edit adds, as an alternate question, the title of another article of the same
    intent (a phrasing an editor would add). At K/8, K/2 and K edits the head is also
    trained in full on the same articles and vectors, and the two builds' first articles
    are compared over the ``labelled`` test questions: with each other, and with the
    question's intent (an article of the right intent first: the generated articles carry
    their source and intent as tags). The 10 % bound (HEAD_REFIT_MAX_SHARE) is lifted here
    so the drift can be seen past it.
    """
    from knowledge.head import DEFAULT_HEAD
    from knowledge.index import KnowledgeIndex

    rng = random.Random(0)
    by_intent: dict[tuple[str, ...], list[str]] = {}
    for article in articles:
        by_intent.setdefault(tuple(article.tags), []).append(article.id)
    editable = [article.id for article in articles if len(by_intent[tuple(article.tags)]) > 1]
    current_articles = {article.id: article for article in articles}
    current, seconds, checkpoints = live, [], []
    for number in range(1, edits + 1):
        article = current_articles[rng.choice(editable)]
        sibling = rng.choice([i for i in by_intent[tuple(article.tags)] if i != article.id])
        question = current_articles[sibling].title
        current_articles[article.id] = article.model_copy(
            update={"questions": [*article.questions, question]}
        )
        started = time.perf_counter()
        current = KnowledgeIndex.build(
            list(current_articles.values()),
            encoder,
            head=DEFAULT_HEAD,
            previous=current,
            head_refit_share=1.0,
        )
        seconds.append(time.perf_counter() - started)
        if number in {max(1, edits // 8), max(1, edits // 2), edits}:
            full = KnowledgeIndex.build(
                list(current_articles.values()),
                encoder,
                head=DEFAULT_HEAD,
                previous=current,
                head_retrain_max_cost=1 << 62,
            )
            firsts = [(_first(current, q), _first(full, q), intent) for q, intent in labelled]
            intents = {article_id: tuple(a.tags) for article_id, a in current_articles.items()}
            refitted_right = [a is not None and intents[a] == i for a, _, i in firsts]
            full_right = [b is not None and intents[b] == i for _, b, i in firsts]
            agreeing = [a == b for a, b, _ in firsts]
            checkpoints.append(
                {
                    "edits": number,
                    "head_refits": current.manifest.head_refits,
                    "top1_agreement": round(float(statistics.mean(agreeing)), 3),
                    "intent_top1_refitted": round(float(statistics.mean(refitted_right)), 3),
                    "intent_top1_full": round(float(statistics.mean(full_right)), 3),
                }
            )
            print(f"head drift {checkpoints[-1]}", file=sys.stderr, flush=True)
    return {
        "edits": edits,
        "build_p50_s": round(statistics.median(seconds), 2),
        "checkpoints": checkpoints,
    }


if __name__ == "__main__":
    raise SystemExit(main())
