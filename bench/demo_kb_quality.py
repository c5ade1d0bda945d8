"""Answer quality on the demo knowledge base, through Rasa's REST channel (so NLU mistakes count).

Two question files, each in-domain questions by article plus out-of-domain questions, and
``asked_by``: who may be answered each article's questions (``docs/editing-articles.md``,
"Audiences"):

- **val** (``bench/data/demo_kb_questions.yml``, 184 + 30): the tuning set. NLU data,
  routing and answer bands were tuned on it only; ``--show-misses`` lists its misses.
- **test** (``bench/data/demo_kb_questions_test.yml``, 60 + 30): held out, written and
  committed before any tuning, frozen by its sha256 (checked on every run; its misses
  are never printed).

Each question is asked by two customers, over the questions that customer may be answered:
an **unidentified** customer (consumer and general articles, and how to join the business
programme) and a **verified business contact** (general and business articles; the slots
a verified business contact has, ``customer_segment=b2b`` and the rest, are set through
Rasa's tracker events API before the question).

Default mode: a private stack (Rasa, action server, bot service on loopback ports, as
``bench.turn_latency`` starts it); every question is a fresh conversation posted to Rasa's
REST webhook. The action that handled it is read from Rasa's tracker; the article answered
from the reply's ``citation`` (``json_message``), the suggestions from its
``/choose_article`` buttons. ``--in-process`` skips Rasa and runs
``knowledge.evaluation.evaluate`` (the code ``kb eval`` runs) on an index built as
``kb build`` builds it: fast, no NLU, and it also sees the ranking (``top1``/``top3``).

Figures per split and customer (``knowledge.evaluation.Figures``): ``shown_top1`` (the
right article is the answer or the first suggestion: the bot-path top-1), ``shown_top3``,
``answered_right``, ``answered_wrong`` (a wrong article answered, share of in-domain;
goal ≤ 0.03), ``suggested``, ``ood_answered`` (goal 0), ``ood_suggested`` and
``routed_elsewhere`` (questions Rasa gave to another action, by action).

``--in-process --index-dir DIR`` evaluates the live build under DIR instead (say, one that
``kb tune --start-from all-mpnet-base-v2 --index-dir DIR`` published), and
``--choose-thresholds`` first chooses its answer and suggest thresholds on val alone.

Usage:
    python -m bench.demo_kb_quality [--in-process] [--show-misses]
    python -m bench.demo_kb_quality --in-process --index-dir DIR [--choose-thresholds]
    python -m bench.demo_kb_quality --in-process --add-article FILE  # e.g. docs/examples/*.md
    python -m bench.demo_kb_quality --index-dir DIR --answer-threshold A --suggest-threshold S
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich.console import Console

from bench.common import emit
from bot.config import Settings, get_settings
from knowledge.answering import BAND_ANSWER, BAND_SUGGEST, BAND_UNKNOWN, AnswerPolicy
from knowledge.evaluation import EvalQuestion, Figures, Outcome, evaluate, score

DATA_DIR = Path(__file__).resolve().parent / "data"
VAL_FILE = DATA_DIR / "demo_kb_questions.yml"
TEST_FILE = DATA_DIR / "demo_kb_questions_test.yml"
TEST_SHA256 = "644cf11b624960361be606ab199c876ff4ee764bd2bcb893aa112d9df525ed01"
"""sha256 of the test file as committed before any tuning (5884fa6)."""

NOW_IN_DOMAIN = {
    "will you take my old mattress away when you deliver the new one": "recycling-old-products",
}
"""Out-of-domain questions of the frozen test file that an article added after the freeze
answers (``recycling-old-products``, 08ae560): scored as in-domain for that article, asked
by both customers. The file itself stays as frozen."""

KNOWLEDGE_ACTION = "action_answer_from_knowledge"
ASKERS = {"unidentified": "b2c", "business": "b2b"}
"""Who asks (as in the files' ``asked_by``) and the audience ``knowledge.evaluation`` uses."""

# The slots a verified business contact's conversation carries (domain.yml).
BUSINESS_CONTACT_SLOTS = {
    "customer_email": "facilities@northwind.example",
    "customer_name": "Alex Meyer",
    "account_name": "Northwind Offices GmbH",
    "account_number": "ACC-20417",
    "customer_segment": "b2b",
}


@dataclass(frozen=True)
class Split:
    """One question file, as questions per customer."""

    name: str
    questions: dict[str, list[EvalQuestion]]


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_split(name: str, path: Path) -> Split:
    """Read a question file into the questions each customer may be answered.

    Raises:
        ValueError: An article has no ``asked_by`` entry, or names an unknown customer.
    """
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    asked_by: dict[str, list[str]] = spec["asked_by"]
    per: dict[str, list[EvalQuestion]] = {asker: [] for asker in ASKERS}
    for article_id, texts in spec["in_domain"].items():
        if article_id not in asked_by:
            raise ValueError(f"{path}: {article_id} has no asked_by entry")
        for asker in asked_by[article_id]:
            if asker not in ASKERS:
                raise ValueError(f"{path}: {article_id}: unknown customer {asker!r}")
            per[asker] += [EvalQuestion(text, article_id, ASKERS[asker]) for text in texts]
    for asker, audience in ASKERS.items():
        per[asker] += [
            EvalQuestion(text, NOW_IN_DOMAIN.get(text), audience) for text in spec["out_of_domain"]
        ]
    return Split(name, per)


def load_splits(val: Path, test: Path) -> list[Split]:
    """The val and test splits; the test file must be the frozen one.

    Raises:
        SystemExit: The test file changed since it was frozen.
    """
    digest = sha256_of(test)
    if test == TEST_FILE and digest != TEST_SHA256:
        raise SystemExit(
            f"FROZEN TEST SET CHANGED: {test} has sha256 {digest}, expected {TEST_SHA256}. "
            "The test questions must not be edited; restore the file with git."
        )
    return [load_split("val", val), load_split("test", test)]


# --- through Rasa -------------------------------------------------------------------------


def outcome_from_reply(
    question: EvalQuestion, messages: list[dict[str, Any]], first_action: str | None
) -> Outcome:
    """What the customer got, from Rasa's REST reply and the action that handled the question.

    Args:
        question: The question asked.
        messages: The REST channel's reply (``text``, ``buttons``, ``custom``).
        first_action: The first action Rasa ran after the question (from its tracker).

    Returns:
        The outcome: band ``elsewhere`` when another action than the knowledge answer
        handled the question.
    """
    answered = None
    suggestions: list[str] = []
    score_value = None
    for message in messages:
        custom = message.get("custom")
        if isinstance(custom, dict) and isinstance(custom.get("citation"), dict):
            answered = custom["citation"].get("article_id")
            score_value = custom["citation"].get("score")
        for button in message.get("buttons") or []:
            payload = str(button.get("payload", ""))
            if payload.startswith("/choose_article"):
                suggestions.append(json.loads(payload[len("/choose_article") :])["article_id"])
    if first_action != KNOWLEDGE_ACTION:
        return Outcome(
            question,
            "elsewhere",
            answered=answered,
            shown=(answered,) if answered else (),
            routed_to=first_action or "none",
        )
    if answered is not None:
        shown = (answered,)
        return Outcome(question, BAND_ANSWER, answered=answered, shown=shown, score=score_value)
    if suggestions:
        return Outcome(question, BAND_SUGGEST, shown=tuple(suggestions))
    return Outcome(question, BAND_UNKNOWN)


def first_action_after_question(tracker: dict[str, Any]) -> str | None:
    """The first action Rasa ran after the conversation's last customer message."""
    events = tracker.get("events", [])
    last_user = max((i for i, e in enumerate(events) if e.get("event") == "user"), default=None)
    if last_user is None:
        return None
    return next(
        (e.get("name") for e in events[last_user + 1 :] if e.get("event") == "action"), None
    )


def ask_through_rasa(client: httpx.Client, settings: Settings, question: EvalQuestion) -> Outcome:
    """Ask one question in a fresh conversation through Rasa's REST channel."""
    assert settings.rasa_token is not None
    token = {"token": settings.rasa_token.get_secret_value()}
    sender = f"bench-kbq-{uuid.uuid4().hex}"
    if question.audience == "b2b":
        # The session starts first, as a real conversation's does before the contact is
        # verified. (Slots appended to a conversation that has no events yet were not
        # seen by the action server on the first turn, with the bounded tracker store.)
        events = [
            {"event": "action", "name": "action_session_start"},
            {"event": "session_started"},
            {"event": "action", "name": "action_listen"},
            *(
                {"event": "slot", "name": name, "value": value}
                for name, value in BUSINESS_CONTACT_SLOTS.items()
            ),
        ]
        client.post(
            f"{settings.rasa_url}/conversations/{sender}/tracker/events",
            params=token,
            json=events,
        ).raise_for_status()
    reply = client.post(
        f"{settings.rasa_url}/webhooks/rest/webhook",
        json={"sender": sender, "message": question.question},
    )
    reply.raise_for_status()
    tracker = client.get(f"{settings.rasa_url}/conversations/{sender}/tracker", params=token)
    tracker.raise_for_status()
    return outcome_from_reply(question, reply.json(), first_action_after_question(tracker.json()))


def run_through_rasa(
    splits: list[Split],
    console: Console,
    *,
    policy: AnswerPolicy | None = None,
    index_dir: Path | None = None,
) -> dict[tuple[str, str], Figures]:
    """Start a private stack and ask every question of every split and customer.

    Args:
        splits: The question sets.
        console: Progress output.
        policy: Answer and suggest thresholds for the stack (default: the settings').
        index_dir: An index root to start from (copied): its live build's tuned encoder,
            if any, is kept by the stack's own build, as ``kb build`` keeps it.
    """
    from bot.ops.setup import prepare_state
    from bot.ops.stack import isolated_settings, started_stack

    figures: dict[tuple[str, str], Figures] = {}
    with tempfile.TemporaryDirectory(prefix="concierge-bench-") as tmp:
        settings = isolated_settings(get_settings(), Path(tmp))
        update: dict[str, Any] = {"chat_rate_limit_messages": 0}
        if policy is not None:
            update["kb_answer_threshold"] = policy.answer_threshold
            update["kb_suggest_threshold"] = policy.suggest_threshold
        settings = settings.model_copy(update=update)
        if index_dir is not None:
            shutil.rmtree(settings.index_dir, ignore_errors=True)
            shutil.copytree(index_dir, settings.index_dir, symlinks=True)
        prepare_state(settings, console)
        with started_stack(settings, console), httpx.Client(timeout=60) as client:
            for split in splits:
                for asker, questions in split.questions.items():
                    outcomes = [ask_through_rasa(client, settings, q) for q in questions]
                    figures[split.name, asker] = score(outcomes)
    return figures


# --- in process ---------------------------------------------------------------------------


def run_in_process(
    splits: list[Split],
    policy: AnswerPolicy,
    *,
    head: bool = True,
    alternate_questions: bool = True,
    extra_articles: Sequence[Path] = (),
) -> dict[tuple[str, str], Figures]:
    """Evaluate every split and customer on an index built as ``kb build`` builds it.

    Args:
        splits: The question sets.
        policy: The answer bands.
        head: Train the shipped classifier head (``False``: nearest neighbour only).
        alternate_questions: Keep the articles' alternate questions (``False``: a
            knowledge base of titles and bodies only, which must not do worse with the
            shipped ranking than with plain nearest neighbour).
        extra_articles: Article files added to the demo articles (say, an out-of-scope
            article to measure before shipping it).
    """
    from knowledge.articles import load_articles, parse_article
    from knowledge.encoder import default_encoder
    from knowledge.head import DEFAULT_HEAD
    from knowledge.index import KnowledgeIndex

    settings = get_settings()
    articles = load_articles(settings.articles_dir)
    articles += [parse_article(path) for path in extra_articles]
    if not alternate_questions:
        articles = [article.model_copy(update={"questions": []}) for article in articles]
    index = KnowledgeIndex.build(articles, default_encoder(), head=DEFAULT_HEAD if head else None)
    return _evaluate_splits(index, splits, policy)


def _evaluate_splits(
    index: Any, splits: list[Split], policy: AnswerPolicy
) -> dict[tuple[str, str], Figures]:
    figures: dict[tuple[str, str], Figures] = {}
    for split in splits:
        for asker, questions in split.questions.items():
            figures[split.name, asker], _ = evaluate(index, questions, policy)
    return figures


def load_live_index(index_dir: Path) -> Any:
    """The live build under an index root (e.g. after ``kb tune``), queries memoised.

    Its own query encoder embeds each question once per run (one question per call, as the
    action server does), so a threshold sweep re-decides the same vectors.
    """
    from bench.levers import CachedEncoder
    from knowledge.index import KnowledgeIndex, query_encoder_for, read_manifest
    from knowledge.store import current_build

    build = current_build(index_dir)
    if build is None:
        raise SystemExit(f"no live build under {index_dir}")
    own = query_encoder_for(build, read_manifest(build))
    return KnowledgeIndex.load(build, CachedEncoder(own, batch=1))


THRESHOLD_GRID = [round(0.30 + 0.02 * step, 2) for step in range(31)]  # 0.30 .. 0.90


def choose_thresholds(
    index: Any, val: Split, policy: AnswerPolicy
) -> tuple[AnswerPolicy, dict[str, float]]:
    """The answer and suggest thresholds chosen on val alone.

    The goals of the knowledge-base issue decide: among the pairs where no out-of-domain
    question is answered and at most 3 % of in-domain questions get a wrong article (for
    both customers), the best mean shown top-1, then the most answered right. Without
    such a pair: the fewest out-of-domain answers, then the best top-1.
    """

    def rank(figures: list[Figures]) -> tuple[float, ...]:
        ood = sum(f.ood_answered for f in figures)
        wrong = max(f.answered_wrong for f in figures)
        top1 = sum(f.shown_top1 for f in figures) / len(figures)
        right = sum(f.answered_right for f in figures) / len(figures)
        return (float(ood == 0 and wrong <= 0.03), -ood, top1, right)

    best: tuple[tuple[float, ...], AnswerPolicy] | None = None
    for answer_at in THRESHOLD_GRID:
        for suggest_at in [t for t in THRESHOLD_GRID if t <= answer_at]:
            candidate = replace(policy, answer_threshold=answer_at, suggest_threshold=suggest_at)
            figures = list(_evaluate_splits(index, [val], candidate).values())
            key = rank(figures)
            if best is None or key > best[0]:
                best = (key, candidate)
    assert best is not None
    key = best[0]
    return best[1], {"meets_goals_on_val": key[0], "val_mean_shown_top1": round(key[2], 4)}


# --- report -------------------------------------------------------------------------------


def _print_misses(console: Console, figures: Figures, label: str) -> None:
    for miss in figures.misses:
        expected = miss.question.expected or "(out of domain)"
        got = miss.routed_to or (f"answer {miss.answered}" if miss.answered else miss.band)
        shown = ", ".join(miss.shown) or "-"
        line = f"MISS {label} {expected} <- {miss.question.question!r}: {got} [{shown}]"
        console.print(line, markup=False, highlight=False)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its JSON line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--val", type=Path, default=VAL_FILE, help="tuning questions")
    parser.add_argument("--test", type=Path, default=TEST_FILE, help="held-out questions")
    parser.add_argument(
        "--in-process", action="store_true", help="skip Rasa: the knowledge decision alone"
    )
    parser.add_argument(
        "--show-misses", action="store_true", help="list the val set's misses (never test's)"
    )
    parser.add_argument(
        "--val-only", action="store_true", help="skip the test set (for tuning runs)"
    )
    parser.add_argument(
        "--no-head",
        action="store_true",
        help="with --in-process: no classifier head (nearest neighbour only)",
    )
    parser.add_argument(
        "--no-alternate-questions",
        action="store_true",
        help="with --in-process: drop every article's alternate questions first",
    )
    parser.add_argument(
        "--add-article",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="with --in-process: add this article file to the demo articles (repeatable)",
    )
    parser.add_argument(
        "--index-dir",
        type=Path,
        default=None,
        help="start from the live build under this index root (e.g. one `kb tune "
        "--index-dir` published): evaluated as it is with --in-process, copied into the "
        "private stack otherwise",
    )
    parser.add_argument("--answer-threshold", type=float, default=None, help="override")
    parser.add_argument("--suggest-threshold", type=float, default=None, help="override")
    parser.add_argument(
        "--choose-thresholds",
        action="store_true",
        help="with --index-dir: choose the answer and suggest thresholds on val alone "
        "(the issue's goals first, then top-1), then report both sets at them",
    )
    args = parser.parse_args(argv)
    if (args.no_head or args.no_alternate_questions or args.add_article) and not args.in_process:
        parser.error("--no-head, --no-alternate-questions and --add-article need --in-process")
    if args.choose_thresholds and not (args.index_dir and args.in_process):
        parser.error("--choose-thresholds needs --in-process and --index-dir")
    settings = get_settings()
    policy = settings.kb_answer_policy()
    if args.answer_threshold is not None or args.suggest_threshold is not None:
        policy = replace(
            policy,
            answer_threshold=(
                policy.answer_threshold if args.answer_threshold is None else args.answer_threshold
            ),
            suggest_threshold=(
                policy.suggest_threshold
                if args.suggest_threshold is None
                else args.suggest_threshold
            ),
        )
    splits = load_splits(args.val, args.test)
    if args.val_only:
        splits = splits[:1]
    console = Console(stderr=True, soft_wrap=True)
    chosen: dict[str, float] = {}
    if args.index_dir is not None and args.in_process:
        index = load_live_index(args.index_dir)
        if args.choose_thresholds:
            policy, chosen = choose_thresholds(index, splits[0], policy)
        figures = _evaluate_splits(index, splits, policy)
    elif args.in_process:
        figures = run_in_process(
            splits,
            policy,
            head=not args.no_head,
            alternate_questions=not args.no_alternate_questions,
            extra_articles=args.add_article,
        )
    else:
        figures = run_through_rasa(splits, console, policy=policy, index_dir=args.index_dir)

    for (split, asker), result in figures.items():
        console.print(
            f"{split:<4} {asker:<12} shown top-1 {result.shown_top1:.3f}  top-3 "
            f"{result.shown_top3:.3f}  answered right {result.answered_right:.3f}  wrong "
            f"{result.answered_wrong:.3f} ({result.answered_wrong_count})  suggested "
            f"{result.suggested:.3f}  ood answered {result.ood_answered}/{result.out_of_domain}"
            f"  elsewhere {sum(result.routed_elsewhere.values())}"
        )
        if args.show_misses and split == "val":
            _print_misses(console, result, f"{split}/{asker}")
    emit(
        {
            "benchmark": "demo_kb_quality",
            "mode": "in-process" if args.in_process else "rasa",
            "head": not args.no_head,
            "alternate_questions": not args.no_alternate_questions,
            **({"added_articles": [str(p) for p in args.add_article]} if args.add_article else {}),
            "answer_threshold": policy.answer_threshold,
            "suggest_threshold": policy.suggest_threshold,
            "answer_margin": policy.answer_margin,
            **({"index_dir": str(args.index_dir), **chosen} if args.index_dir else {}),
            "test_sha256": sha256_of(args.test),
            **{f"{split}_{asker}": result.to_dict() for (split, asker), result in figures.items()},
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
