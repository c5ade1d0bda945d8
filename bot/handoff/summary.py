"""A two-to-three-line summary of a conversation for the agent, made locally.

Extractive: the customer's own words (the first substantive message, and the latest one
when it differs), what the bot tried, and why the conversation was handed over. No
external service, nothing invented.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MAX_QUOTE_CHARS = 160
_TRIVIAL = frozenset(
    {"hi", "hello", "hey", "yes", "no", "ok", "okay", "thanks", "thank you", "talk to a person"}
)


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_QUOTE_CHARS else text[: MAX_QUOTE_CHARS - 1] + "…"


def _substantive(texts: Sequence[str]) -> list[str]:
    return [
        text
        for text in texts
        if text.strip() and not text.startswith("/") and text.strip(" .!?").lower() not in _TRIVIAL
    ]


def summarize(*, customer_texts: Sequence[str], reason: str, context: dict[str, Any]) -> str:
    """Summarise a handed-over conversation in two or three lines.

    Args:
        customer_texts: The customer's messages, oldest first.
        reason: Why the conversation was handed over (human words).
        context: The bot's context (``knowledge`` with attempts and answered articles).

    Returns:
        Lines joined by newlines.
    """
    lines: list[str] = []
    said = _substantive(customer_texts)
    if said:
        first, last = said[0], said[-1]
        line = f"Customer asked: “{_quote(first)}”"
        if last != first:
            line += f"; latest: “{_quote(last)}”"
        lines.append(line + ".")
    else:
        lines.append("Customer has not described the problem yet.")
    knowledge = context.get("knowledge") or {}
    answered = list(knowledge.get("articles_answered") or [])
    offered = [a for a in knowledge.get("articles_offered") or [] if a not in answered]
    attempts = knowledge.get("attempts") or []
    unknown = sum(1 for attempt in attempts if attempt.get("outcome") == "unknown")
    tried: list[str] = []
    if answered:
        tried.append("answered with " + ", ".join(answered[:3]))
    if offered:
        tried.append("suggested " + ", ".join(offered[:3]))
    if unknown:
        tried.append(f"found no answer {unknown}×")
    lines.append(("Bot " + "; ".join(tried)) if tried else "Bot has not tried an article")
    lines[-1] += f". Handed over: {reason}."
    return "\n".join(lines)
