"""Answer questions from the knowledge base, in three confidence bands.

``action_answer_from_knowledge`` searches the help articles with the customer's
latest message and, using ``kb_answer_threshold`` / ``kb_suggest_threshold`` from
the settings:

* **answer** (best score >= answer threshold): the article's summary as plain text
  (Markdown stripped, so every channel shows it cleanly), with a ``citation`` in
  ``json_message`` and feedback buttons;
* **suggest** (best score >= suggest threshold): ``utter_kb_suggestions`` with one
  button per plausible article (``/choose_article{"article_id": ...}``) and a
  "Talk to a person" button;
* **unknown** (anything lower): ``utter_kb_unknown``, which says so plainly and
  offers a person, instead of guessing.

Audiences: articles are for ``b2c``, ``b2b`` or ``all`` customers. The search first
covers the customer's own audience (``b2b`` + ``all`` for business contacts,
``b2c`` + ``all`` for everyone else, including customers not identified yet). Only
if that finds no answer-band hit are all articles searched, and that result is used
when *it* has an answer-band hit: a consumer asking how to join Kestrel for Business
still gets the business article, but business-only articles never crowd the
suggestions of a consumer (and vice versa). Business contacts also *prefer* business
articles: a ``b2b`` hit within ``B2B_PREFERENCE_MARGIN`` (0.05) of a better general
hit, and in the same band, is moved to the top (e.g. "can we pay by invoice?" gets
the Net-30 article rather than the consumer invoice one).

``action_answer_chosen_article`` answers the article picked from the suggestions.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import deps
from bot.config import get_settings
from knowledge.chunking import strip_markdown
from knowledge.index import Hit

__all__ = [
    "B2B_PREFERENCE_MARGIN",
    "FEEDBACK_BUTTONS",
    "TALK_TO_PERSON_BUTTON",
    "ActionAnswerChosenArticle",
    "ActionAnswerFromKnowledge",
    "choose_article_payload",
    "citation",
    "search_for_customer",
]

logger = logging.getLogger(__name__)

B2B_PREFERENCE_MARGIN = 0.05

OUTCOME_ANSWERED = "answered"
OUTCOME_SUGGESTED = "suggested"
OUTCOME_UNKNOWN = "unknown"
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


def citation(article_id: str, title: str, score: float | None) -> dict[str, Any]:
    """Return the ``json_message`` that cites the article an answer came from."""
    return {
        "citation": {
            "article_id": article_id,
            "title": title,
            "score": None if score is None else round(float(score), 3),
        }
    }


def _band(score: float, *, answer_threshold: float, suggest_threshold: float) -> int:
    return 2 if score >= answer_threshold else 1 if score >= suggest_threshold else 0


def _prefer_business(
    hits: list[Hit], *, answer_threshold: float, suggest_threshold: float
) -> list[Hit]:
    if not hits or hits[0].audience == "b2b":
        return hits
    best = hits[0]
    band = _band(best.score, answer_threshold=answer_threshold, suggest_threshold=suggest_threshold)
    for hit in hits[1:]:
        close = best.score - hit.score <= B2B_PREFERENCE_MARGIN
        same_band = (
            _band(hit.score, answer_threshold=answer_threshold, suggest_threshold=suggest_threshold)
            == band
        )
        if hit.audience == "b2b" and close and same_band:
            return [hit, *(other for other in hits if other is not hit)]
    return hits


def search_for_customer(
    knowledge_base: deps.KnowledgeSource,
    query: str,
    *,
    segment: str | None,
    limit: int,
    answer_threshold: float,
    suggest_threshold: float,
) -> list[Hit]:
    """Search the customer's audience first, then every article (see the module docstring).

    Args:
        knowledge_base: Where to search.
        query: The customer's question.
        segment: The ``customer_segment`` slot (``"b2b"``, ``"b2c"`` or ``None``).
        limit: Most hits returned.
        answer_threshold: Score from which a hit is answered directly.
        suggest_threshold: Score from which a hit is offered as a suggestion.

    Returns:
        Up to ``limit`` hits, the one to answer with (if any) first.
    """
    business = segment == "b2b"
    hits = knowledge_base.search(query, limit, audience="b2b" if business else "b2c")
    if business:
        hits = _prefer_business(
            hits, answer_threshold=answer_threshold, suggest_threshold=suggest_threshold
        )
    if hits and hits[0].score >= answer_threshold:
        return hits
    everything = knowledge_base.search(query, limit, audience=None)
    if everything and everything[0].score >= answer_threshold:
        return everything
    return hits


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
        query = (tracker.latest_message.get("text") or "").strip()
        if not query or query.startswith("/"):
            # A button payload or an empty message: there is no question to search for.
            logger.info("No question to search for conversation=%s", tracker.sender_id)
            dispatcher.utter_message(response="utter_default")
            return []

        settings = get_settings()
        attempts = _previous_attempts(tracker) + 1
        try:
            knowledge_base = deps.get_knowledge_base()
            hits = await asyncio.to_thread(
                search_for_customer,
                knowledge_base,
                query,
                segment=tracker.get_slot("customer_segment"),
                limit=settings.kb_top_k,
                answer_threshold=settings.kb_answer_threshold,
                suggest_threshold=settings.kb_suggest_threshold,
            )
        except Exception:
            logger.exception("Knowledge search failed conversation=%s", tracker.sender_id)
            dispatcher.utter_message(response="utter_kb_unavailable")
            return _events(query, None, OUTCOME_UNAVAILABLE, attempts)

        best = hits[0] if hits else None
        if best is not None and best.score >= settings.kb_answer_threshold:
            dispatcher.utter_message(
                text=strip_markdown(best.summary),
                json_message=citation(best.article_id, best.title, best.score),
                buttons=list(FEEDBACK_BUTTONS),
            )
            outcome, article_id = OUTCOME_ANSWERED, best.article_id
        elif suggestions := [hit for hit in hits if hit.score >= settings.kb_suggest_threshold]:
            buttons = [
                {"title": hit.title, "payload": choose_article_payload(hit.article_id)}
                for hit in suggestions
            ]
            dispatcher.utter_message(
                response="utter_kb_suggestions", buttons=[*buttons, TALK_TO_PERSON_BUTTON]
            )
            outcome, article_id = OUTCOME_SUGGESTED, None
        else:
            dispatcher.utter_message(response="utter_kb_unknown")
            outcome, article_id = OUTCOME_UNKNOWN, None

        logger.info(
            "Knowledge %s conversation=%s article=%s score=%s",
            outcome,
            tracker.sender_id,
            article_id,
            f"{best.score:.3f}" if best is not None else None,
        )
        return _events(query, article_id, outcome, attempts)


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
        """Look up the chosen ``article_id`` entity and send its summary with a citation."""
        article_id = next(tracker.get_latest_entity_values("article_id"), None)
        if not article_id:
            logger.info("No article chosen conversation=%s", tracker.sender_id)
            dispatcher.utter_message(response="utter_kb_unknown")
            return _chosen_events(None, OUTCOME_UNKNOWN)
        try:
            knowledge_base = deps.get_knowledge_base()
            article = await asyncio.to_thread(knowledge_base.article, str(article_id))
        except Exception:
            logger.exception(
                "Could not load article %s conversation=%s", article_id, tracker.sender_id
            )
            dispatcher.utter_message(response="utter_kb_unavailable")
            return _chosen_events(None, OUTCOME_UNAVAILABLE)
        if article is None:
            logger.warning(
                "Chosen article %s does not exist conversation=%s", article_id, tracker.sender_id
            )
            dispatcher.utter_message(response="utter_kb_unknown")
            return _chosen_events(None, OUTCOME_UNKNOWN)
        dispatcher.utter_message(
            text=strip_markdown(article.summary),
            json_message=citation(article.id, article.title, None),
            buttons=list(FEEDBACK_BUTTONS),
        )
        return _chosen_events(article.id, OUTCOME_ANSWERED)


def _chosen_events(article_id: str | None, outcome: str) -> list[dict[str, Any]]:
    return [SlotSet("kb_last_article_id", article_id), SlotSet("kb_last_outcome", outcome)]
