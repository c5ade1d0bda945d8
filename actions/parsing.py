"""Find customer identifiers (e-mail, account and order numbers) in free text with spaCy.

A blank English pipeline (no model download) gets an ``EntityRuler`` that labels
``ACCOUNT_NUMBER`` (``ACC-12345``), ``ORDER_NUMBER`` (``ORD-123456``) and ``EMAIL``,
case-insensitively. The tokenizer is taught to keep e-mail addresses and numbers in
one token (spaCy's default splits ``Jane.Doe@Example.com`` and its ``LIKE_EMAIL``
misses long top-level domains such as ``.example``), and to split a ``mailto:`` or
``email:`` prefix off an address. The pipeline is built on first use and cached.

Usage:
    >>> extract_identifiers("It's acc-10042, mail me at Jane@Example.com")
    Identifiers(email='jane@example.com', account_number='ACC-10042', order_number=None)
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spacy.language import Language

__all__ = [
    "ACCOUNT_NUMBER_LABEL",
    "EMAIL_LABEL",
    "ORDER_NUMBER_LABEL",
    "Identifiers",
    "extract_identifiers",
    "get_nlp",
    "normalize_account_number",
    "normalize_email",
    "normalize_order_number",
    "without_identifiers",
]

ACCOUNT_NUMBER_LABEL = "ACCOUNT_NUMBER"
ORDER_NUMBER_LABEL = "ORDER_NUMBER"
EMAIL_LABEL = "EMAIL"

_EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
_ACCOUNT_NUMBER = r"ACC-\d{5}"
_ORDER_NUMBER = r"ORD-\d{6}"

_TOKEN = re.compile(rf"(?:{_EMAIL}|{_ACCOUNT_NUMBER}|{_ORDER_NUMBER})", re.IGNORECASE)
_EMAIL_ONLY = re.compile(_EMAIL)
_ACCOUNT_ONLY = re.compile(_ACCOUNT_NUMBER, re.IGNORECASE)
_ORDER_ONLY = re.compile(_ORDER_NUMBER, re.IGNORECASE)
# "email:jane@example.com" / "mailto:jane@example.com": split the scheme off the address.
_ADDRESS_PREFIX = r"[A-Za-z]+:(?=[A-Za-z0-9._%+-]+@)"

_PATTERNS: list[dict[str, object]] = [
    {"label": ACCOUNT_NUMBER_LABEL, "pattern": [{"TEXT": {"REGEX": rf"(?i)^{_ACCOUNT_NUMBER}$"}}]},
    {"label": ORDER_NUMBER_LABEL, "pattern": [{"TEXT": {"REGEX": rf"(?i)^{_ORDER_NUMBER}$"}}]},
    {"label": EMAIL_LABEL, "pattern": [{"LIKE_EMAIL": True}]},
    {"label": EMAIL_LABEL, "pattern": [{"TEXT": {"REGEX": rf"^{_EMAIL}$"}}]},
]

_nlp: Language | None = None
_nlp_lock = threading.Lock()


@dataclass(frozen=True)
class Identifiers:
    """Customer identifiers found in a message (the first of each kind), normalised.

    Attributes:
        email: Lower-case e-mail address.
        account_number: Upper-case account number, e.g. ``ACC-10042``.
        order_number: Upper-case order number, e.g. ``ORD-123456``.
    """

    email: str | None = None
    account_number: str | None = None
    order_number: str | None = None

    @property
    def is_empty(self) -> bool:
        """Whether no identifier was found."""
        return self.email is None and self.account_number is None and self.order_number is None


def normalize_email(value: str | None) -> str | None:
    """Return a trimmed, lower-case e-mail address, or ``None`` if it is not one."""
    if value is None:
        return None
    value = value.strip().strip(".,;:!?()<>[]\"'").lower()
    return value if _EMAIL_ONLY.fullmatch(value) else None


def normalize_account_number(value: str | None) -> str | None:
    """Return an upper-case ``ACC-12345`` account number, or ``None`` if it is not one."""
    if value is None:
        return None
    value = value.strip().upper()
    return value if _ACCOUNT_ONLY.fullmatch(value) else None


def normalize_order_number(value: str | None) -> str | None:
    """Return an upper-case ``ORD-123456`` order number, or ``None`` if it is not one."""
    if value is None:
        return None
    value = value.strip().upper()
    return value if _ORDER_ONLY.fullmatch(value) else None


def _build_nlp() -> Language:
    from knowledge.nlp import blank_english

    nlp = blank_english()
    from spacy.tokenizer import Tokenizer
    from spacy.util import compile_prefix_regex

    tokenizer = nlp.tokenizer
    assert isinstance(tokenizer, Tokenizer)
    default_match = tokenizer.token_match

    def token_match(text: str) -> bool:
        if _TOKEN.fullmatch(text):
            return True
        return bool(default_match(text)) if default_match is not None else False

    tokenizer.token_match = token_match
    prefixes = [_ADDRESS_PREFIX, *(nlp.Defaults.prefixes or [])]
    tokenizer.prefix_search = compile_prefix_regex(prefixes).search
    ruler = nlp.add_pipe("entity_ruler", config={"validate": True})
    ruler.add_patterns(_PATTERNS)  # type: ignore[attr-defined]
    return nlp


def get_nlp() -> Language:
    """Return the cached identifier pipeline, building it on first use (thread-safe)."""
    global _nlp
    if _nlp is None:
        with _nlp_lock:
            if _nlp is None:
                _nlp = _build_nlp()
    return _nlp


def extract_identifiers(text: str | None) -> Identifiers:
    """Find the first e-mail address, account number and order number in a message.

    Args:
        text: The customer's message (``None`` and empty text find nothing).

    Returns:
        The normalised identifiers; fields not found are ``None``.
    """
    if not text or not text.strip():
        return Identifiers()
    found: dict[str, str] = {}
    for entity in get_nlp()(text).ents:
        found.setdefault(entity.label_, entity.text)
    return Identifiers(
        email=normalize_email(found.get(EMAIL_LABEL)),
        account_number=normalize_account_number(found.get(ACCOUNT_NUMBER_LABEL)),
        order_number=normalize_order_number(found.get(ORDER_NUMBER_LABEL)),
    )


def without_identifiers(text: str) -> str:
    """The message with every e-mail address, account and order number in it cut out.

    Every one, not only the first of each kind, and as typed (the cut follows the entity
    spans, so case and surrounding punctuation do not matter). Spaces are collapsed.

    Args:
        text: The customer's message.

    Returns:
        What is left, or ``text`` itself when nothing else is left.
    """
    if not text.strip():
        return text
    doc = get_nlp()(text)
    kept, start = [], 0
    for entity in doc.ents:
        kept.append(text[start : entity.start_char])
        start = entity.end_char
    kept.append(text[start:])
    rest = " ".join(" ".join(kept).split())
    return rest or text
