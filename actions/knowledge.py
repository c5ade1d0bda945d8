"""Answer questions from the knowledge base, in three confidence bands.

``action_answer_from_knowledge`` asks :func:`knowledge.answering.answer_question` what to
do with the customer's latest message (the bands and the audience rules live there, so
``kb search`` and the benchmarks see exactly what the bot does), with the thresholds
``kb_answer_threshold`` / ``kb_suggest_threshold`` and ``kb_top_k`` from the settings:

* **answer**: the article's summary as plain text (Markdown stripped, so every channel
  shows it cleanly), with a ``citation`` in ``json_message`` and feedback buttons;
* **suggest**: ``utter_kb_suggestions`` with one button per plausible article
  (``/choose_article{"article_id": ...}``) and a "Talk to a person" button;
* **unknown**: ``utter_kb_unknown``, which says so plainly and offers a person, instead
  of guessing.

The customer's ``customer_segment`` slot picks the audience searched first (business
articles for verified business contacts, consumer articles for everyone else).

Out-of-scope-looking messages come here too (``data/rules``): the knowledge base decides,
and when it has no answer the reply is ``utter_out_of_scope``'s wording. A question that
quotes an order number, account number or e-mail is answered, then handed to
``action_identify_customer`` as a follow-up, which notes the identifiers.

``action_answer_chosen_article`` answers the article picked from the suggestions.

``action_knowledge_runtime_report`` is a diagnostic that Rasa never predicts (it is not in
the domain): it searches once in a worker thread, as questions are searched, and returns
what serves searches there (native thread limits, whether torch is loaded, the query
encoder and build, the process's resident memory) as ``{"knowledge_runtime": {...}}``.
The integration tests call it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import deps
from actions.identity import identifiers_from_tracker
from actions.parsing import Identifiers, without_identifiers
from actions.timing import report_timing
from bot.config import Settings, get_settings
from knowledge.answering import (
    B2B_PREFERENCE_MARGIN,
    BAND_ANSWER,
    BAND_SUGGEST,
    Answer,
    AnswerPolicy,
    answer_question,
    chosen_article,
)
from knowledge.chunking import strip_markdown
from knowledge.threads import native_thread_report
from knowledge.timing import collecting

__all__ = [
    "B2B_PREFERENCE_MARGIN",
    "FEEDBACK_BUTTONS",
    "TALK_TO_PERSON_BUTTON",
    "ActionAnswerChosenArticle",
    "ActionAnswerFromKnowledge",
    "ActionKnowledgeRuntimeReport",
    "answer_policy",
    "choose_article_payload",
    "citation",
]

logger = logging.getLogger(__name__)

OUTCOME_ANSWERED = "answered"
OUTCOME_SUGGESTED = "suggested"
OUTCOME_UNKNOWN = "unknown"
# This many unanswered questions in a row hand the conversation to a person.
UNKNOWN_STREAK_FOR_HANDOFF = 2
OUTCOME_UNAVAILABLE = "unavailable"

FEEDBACK_BUTTONS: list[dict[str, str]] = [
    # Words, not emoji: not every device has an emoji font, and a button must always read.
    {"title": "Yes, that helped", "payload": "/feedback_helpful"},
    {"title": "No, not really", "payload": "/feedback_unhelpful"},
]
TALK_TO_PERSON_BUTTON: dict[str, str] = {"title": "Talk to a person", "payload": "/request_human"}


def choose_article_payload(article_id: str) -> str:
    """Return the button payload that picks an article, e.g. ``/choose_article{...}``."""
    return "/choose_article" + json.dumps({"article_id": article_id}, separators=(",", ":"))


def citation(
    article_id: str,
    title: str,
    score: float | None,
    *,
    section: str | None = None,
    anchor: str | None = None,
) -> dict[str, Any]:
    """Return the ``json_message`` that cites the article (and section) an answer came from."""
    cited: dict[str, Any] = {
        "article_id": article_id,
        "title": title,
        "score": None if score is None else round(float(score), 3),
    }
    if section:
        cited["section"] = section
        cited["anchor"] = anchor
    return {"citation": cited}


def answer_policy(settings: Settings) -> AnswerPolicy:
    """Return the answer bands and number of hits configured in the settings."""
    return settings.kb_answer_policy()


def _previous_attempts(tracker: Tracker) -> float:
    value = tracker.get_slot("kb_attempts")
    try:
        return float(value) if value is not None else 0.0
    except (TypeError, ValueError):
        return 0.0


class ActionAnswerFromKnowledge(Action):
    """Answer, suggest articles, or say plainly that we don't know."""

    def name(self) -> str:
        """Return the action's name."""
        return "action_answer_from_knowledge"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        """Search the knowledge base with the latest message and reply in its band."""
        started = time.perf_counter()
        stages_ms: dict[str, float] = {}
        events = await self._answer(dispatcher, tracker, stages_ms)
        report_timing(dispatcher, action=self.name(), started=started, stages_ms=stages_ms)
        return events

    async def _answer(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, stages_ms: dict[str, float]
    ) -> list[dict[str, Any]]:
        query = (tracker.latest_message.get("text") or "").strip()
        if not query or query.startswith("/"):
            # A button payload or an empty message: there is no question to search for.
            logger.info("No question to search for conversation=%s", tracker.sender_id)
            dispatcher.utter_message(response="utter_default")
            return []

        policy = answer_policy(get_settings())
        attempts = _previous_attempts(tracker) + 1
        identifiers = identifiers_from_tracker(tracker)
        try:
            knowledge_base = deps.get_knowledge_base()
            answer = await asyncio.to_thread(
                _timed_answer,
                knowledge_base,
                _without_identifiers(query, identifiers),
                segment=tracker.get_slot("customer_segment"),
                policy=policy,
                stages_ms=stages_ms,
            )
        except Exception:
            logger.exception("Knowledge search failed conversation=%s", tracker.sender_id)
            dispatcher.utter_message(response="utter_kb_unavailable")
            return _events(query, None, OUTCOME_UNAVAILABLE, attempts)

        best = answer.top
        if answer.band == BAND_ANSWER and best is not None:
            dispatcher.utter_message(
                text=strip_markdown(best.answer_text),  # a long article: its matched passage
                json_message=citation(
                    best.article_id,
                    best.title,
                    best.score,
                    section=best.section,
                    anchor=best.section_anchor,
                ),
                buttons=list(FEEDBACK_BUTTONS),
            )
            outcome, article_id = OUTCOME_ANSWERED, best.article_id
        elif answer.band == BAND_SUGGEST:
            buttons = [
                {"title": hit.title, "payload": choose_article_payload(hit.article_id)}
                for hit in answer.suggestions
            ]
            dispatcher.utter_message(
                response="utter_kb_suggestions", buttons=[*buttons, TALK_TO_PERSON_BUTTON]
            )
            outcome, article_id = OUTCOME_SUGGESTED, None
        else:
            outcome, article_id = OUTCOME_UNKNOWN, None

        streak = _unknown_streak(tracker) + 1 if outcome == OUTCOME_UNKNOWN else 0
        if streak >= UNKNOWN_STREAK_FOR_HANDOFF:
            # Two questions in a row without an answer: a person, not a third guess.
            dispatcher.utter_message(response="utter_kb_unknown_again")
        elif outcome == OUTCOME_UNKNOWN:
            dispatcher.utter_message(response=_unknown_response(tracker))

        logger.info(
            "Knowledge %s conversation=%s article=%s score=%s",
            outcome,
            tracker.sender_id,
            article_id,
            f"{best.score:.3f}" if best is not None else None,
        )
        events = [*_events(query, article_id, outcome, attempts)]
        events.append(SlotSet("kb_unknown_streak", float(streak)))
        if streak >= UNKNOWN_STREAK_FOR_HANDOFF:
            events.append(FollowupAction("action_handoff_to_human"))
        elif not identifiers.is_empty:
            # A question quoting an order number, account number or e-mail: answered
            # above, and the identifiers are noted for the team as if given on their own.
            events.append(FollowupAction("action_identify_customer"))
        return events


def _timed_answer(
    knowledge_base: deps.KnowledgeSource,
    query: str,
    *,
    segment: str | None,
    policy: AnswerPolicy,
    stages_ms: dict[str, float],
) -> Answer:
    """``answer_question`` in this worker thread, noting ``encode_ms`` and ``search_ms``.

    ``search_ms`` is the rest of the decision: faiss, ranking and the audience rules.
    """
    started = time.perf_counter()
    with collecting() as seconds:
        answer = answer_question(knowledge_base, query, segment=segment, policy=policy)
    total = time.perf_counter() - started
    encode = seconds.get("encode", 0.0)
    stages_ms["encode_ms"] = encode * 1000
    stages_ms["search_ms"] = (total - encode) * 1000
    return answer


def _without_identifiers(query: str, identifiers: Identifiers) -> str:
    """The question without the order numbers, account numbers or e-mails it quotes.

    An identifier says nothing about which article answers, and it pulls the question's
    vector away from the articles' (a tracking question scored 0.52 with an order number
    in it and 0.61 without). The tracker's identifiers (Rasa's entities) are cut as well
    as every one the identifier pipeline finds in the text.
    """
    text = query
    for value in (identifiers.email, identifiers.account_number, identifiers.order_number):
        if value:
            text = re.sub(re.escape(value), " ", text, flags=re.IGNORECASE)
    text = without_identifiers(text)
    return text if text.strip() else query


def _searched_text(query: object) -> str | None:
    """The suggestions' question as it was searched (kb_last_query keeps what was typed)."""
    if not isinstance(query, str) or not query.strip():
        return None
    return without_identifiers(query)


def _unknown_response(tracker: Tracker) -> str:
    """The "no answer" reply: the out-of-scope wording when NLU took the message for one."""
    intent = (tracker.latest_message.get("intent") or {}).get("name")
    return "utter_out_of_scope" if intent == "out_of_scope" else "utter_kb_unknown"


def _unknown_streak(tracker: Tracker) -> int:
    """How many turns in a row before this one went unanswered (unknown or out of scope)."""
    try:
        return int(float(tracker.get_slot("kb_unknown_streak") or 0))
    except (TypeError, ValueError):
        return 0


def _events(
    query: str, article_id: str | None, outcome: str, attempts: float
) -> list[dict[str, Any]]:
    return [
        SlotSet("kb_last_query", query),
        SlotSet("kb_last_article_id", article_id),
        SlotSet("kb_last_outcome", outcome),
        SlotSet("kb_attempts", attempts),
    ]


class ActionAnswerChosenArticle(Action):
    """Answer the article the customer picked from the suggestion buttons."""

    def name(self) -> str:
        """Return the action's name."""
        return "action_answer_chosen_article"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        """Answer the chosen ``article_id``: its passage that matched the question, cited."""
        started = time.perf_counter()
        events = await self._answer(dispatcher, tracker)
        report_timing(dispatcher, action=self.name(), started=started)
        return events

    async def _answer(
        self, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> list[dict[str, Any]]:
        article_id = next(tracker.get_latest_entity_values("article_id"), None)
        if not article_id:
            logger.info("No article chosen conversation=%s", tracker.sender_id)
            dispatcher.utter_message(response="utter_kb_unknown")
            return _chosen_events(None, OUTCOME_UNKNOWN)
        query = tracker.get_slot("kb_last_query")
        segment = tracker.get_slot("customer_segment")
        try:
            knowledge_base = deps.get_knowledge_base()
            chosen = await asyncio.to_thread(
                chosen_article,
                knowledge_base,
                str(article_id),
                query=_searched_text(query),
                segment=segment,
            )
        except Exception:
            logger.exception(
                "Could not load article %s conversation=%s", article_id, tracker.sender_id
            )
            dispatcher.utter_message(response="utter_kb_unavailable")
            return _chosen_events(None, OUTCOME_UNAVAILABLE)
        if chosen is None:
            logger.warning(
                "Chosen article %s does not exist or is not for segment %s conversation=%s",
                article_id,
                segment,
                tracker.sender_id,
            )
            dispatcher.utter_message(response="utter_kb_unknown")
            return _chosen_events(None, OUTCOME_UNKNOWN)
        article, hit = chosen
        dispatcher.utter_message(
            # a long article: the passage that matched the question, citing its section
            text=strip_markdown(hit.answer_text if hit is not None else article.summary),
            json_message=citation(
                article.id,
                article.title,
                None,
                section=hit.section if hit is not None else None,
                anchor=hit.section_anchor if hit is not None else None,
            ),
            buttons=list(FEEDBACK_BUTTONS),
        )
        return _chosen_events(article.id, OUTCOME_ANSWERED)


def _chosen_events(article_id: str | None, outcome: str) -> list[dict[str, Any]]:
    return [SlotSet("kb_last_article_id", article_id), SlotSet("kb_last_outcome", outcome)]


class ActionKnowledgeRuntimeReport(Action):
    """Diagnostic: report the thread settings and query encoder serving searches."""

    def name(self) -> str:
        """Return the action's name."""
        return "action_knowledge_runtime_report"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        """Search once in a worker thread and send what is in force there as ``json_message``."""
        try:
            report = await asyncio.to_thread(_search_and_report, deps.get_knowledge_base())
        except Exception as error:
            logger.exception("Knowledge runtime report failed conversation=%s", tracker.sender_id)
            report = {"error": f"{type(error).__name__}: {error}"}
        dispatcher.utter_message(json_message={"knowledge_runtime": report})
        return []


def _search_and_report(knowledge_base: deps.KnowledgeSource) -> dict[str, Any]:
    knowledge_base.search("warm up", 1)
    runtime_report = getattr(knowledge_base, "runtime_report", None)
    report = dict(runtime_report()) if callable(runtime_report) else native_thread_report()
    report["rss_mb"] = _resident_mb()
    return report


def _resident_mb() -> float | None:
    """This process's resident memory in MB (Linux), or ``None`` where /proc is missing."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None
