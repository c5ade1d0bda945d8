"""Local frustration detection for customer chat messages.

Decides whether a customer's message shows frustration (anger, insults, profanity, threats,
shouting, repeating the same complaint) so the bot can offer a human. Everything runs
locally: a weighted lexicon matched with spaCy (a blank English pipeline, no model), a few
surface signals (capitals, runs of ``!``/``?``) and rapidfuzz similarity against the
customer's earlier messages in the conversation.

Each cue found adds a weight in 0..1; weights combine as a noisy-OR
(``1 - prod(1 - w)``), so one strong cue or two weak ones reach the threshold. Anger and
insult words right after a negation ("not angry, just asking") do not count.

Only the first :data:`MAX_CHARS` characters of a message (and of each of the last
:data:`MAX_EARLIER` earlier messages) are read, so very long input stays fast.

Example:
    >>> detect_frustration("my payment got declined").frustrated
    False
    >>> detect_frustration("this is ridiculous, worst service ever").frustrated
    True
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rapidfuzz import fuzz, process

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.matcher import Matcher, PhraseMatcher
    from spacy.tokens import Doc

__all__ = [
    "DEFAULT_THRESHOLD",
    "MAX_CHARS",
    "MAX_EARLIER",
    "FrustrationResult",
    "detect_frustration",
]

DEFAULT_THRESHOLD = 0.5
"""Score at or above which a message counts as frustrated."""

MAX_CHARS = 4000
"""Characters of a message that are analysed; the rest is ignored."""

MAX_EARLIER = 6
"""How many of the most recent earlier customer messages are compared."""


def _words(text: str) -> list[str]:
    """Split a comma-separated word list written across lines."""
    return [word.strip() for word in text.split(",") if word.strip()]


# Lexicon: (cue, weight, comma-separated phrases). Matched on spaCy token norms, so case,
# "don't"/"dont" and "I'm"/"I am" do not matter.
_LEXICON: tuple[tuple[str, float, str], ...] = (
    (
        "insult",
        0.6,
        """
        useless, incompetent, clueless, idiot, idiots, moron, morons, stupid, pathetic,
        disgrace, disgraceful, thieves, crooks, liars, garbage, rubbish, a joke,
        a total joke, an absolute joke, a complete joke, beyond a joke, this is a scam,
        a total scam, a complete scam, such a scam, you are a scam, shambles, a shambles,
        clowns, amateurs, hopeless, worthless
        """,
    ),
    (
        "insult",
        0.45,
        """
        scam, scammers, you people, you lot, hate you, hate this
        """,
    ),
    (
        "profanity",
        0.55,
        """
        fuck, fucking, fucked, f***, f***ing, f**k, f*ck, f*cking, wtf, ffs, shit, shite,
        shitty, crap, crappy, damn, damn it, the hell, bloody hell, what the f, bullshit,
        piss, pissed, pissed off, omfg, bloody
        """,
    ),
    (
        "anger",
        0.6,
        """
        angry, furious, fuming, livid, outraged, outrageous, disgusted, disgusting,
        unacceptable, not acceptable, ridiculous, appalling, appalled, shocking, terrible,
        horrible, horrendous, awful, worst, nightmare, unbelievable, fed up, sick of,
        sick and tired, had enough, enough is enough, driving me mad, driving me crazy,
        losing my patience, lost my patience, run out of patience, more than patient,
        waste of time, waste of my time, wasting my time, thanks for nothing,
        why do i even bother, never again, never ordering, never buying, never shopping,
        not happy, are you kidding, kidding me, are you serious, frustrated, frustrating,
        infuriating, annoyed, annoying, irritated, upset, done with this, done with you,
        ruined, poor service, incredibly poor, expected better
        """,
    ),
    (
        "anger",
        0.4,
        """
        seriously, ugh, mad, omg
        """,
    ),
    (
        "anger",
        0.25,
        """
        disappointed, disappointing
        """,
    ),
    (
        "threat",
        0.6,
        """
        1 star, one star, 1-star, trading standards, dispute the charge,
        disputing the charge, chargeback, report you, reporting you, my solicitor,
        my lawyer, small claims, ombudsman, bad review
        """,
    ),
    (
        "escalation",
        0.5,
        """
        speak to a manager, speak to your manager, speak to the manager, talk to a manager,
        talk to your manager, get me a manager, want a manager, speak to a supervisor,
        your supervisor
        """,
    ),
    (
        "exasperation",
        0.5,
        """
        are you even listening, read what i wrote, read my message, not what i asked,
        don't tell me, don't give me, stop sending, stop wasting, how hard can it be,
        why is it so hard, so difficult, you clearly don't care,
        don't care about your customers, nobody cares, no one cares, what kind of company,
        how you treat, is this a joke, doesn't understand, don't understand anything,
        you don't understand, answer the question
        """,
    ),
    (
        "repeated_complaint",
        0.5,
        """
        how many times, already told you, already asked, asked this, for the last time,
        keep saying, keep telling, keep sending, every single time, yet again, once again,
        twice now, same answer, canned answer, still no answer, still no reply,
        still no response, i told you
        """,
    ),
    (
        "repeated_complaint",
        0.3,
        """
        every time, been trying
        """,
    ),
    (
        "demand",
        0.5,
        """
        i demand, i insist
        """,
    ),
    (
        "demand",
        0.35,
        """
        refund me, give me my money, my money back, want my money, fix it, fix this,
        not paying, i want a refund
        """,
    ),
)

# Weights of the cues that are not words from the lexicon.
_WEIGHTS = {
    "caps": 0.4,
    "emphasis": 0.2,
    "punctuation_strong": 0.3,
    "punctuation_mild": 0.15,
    "counted_repeat": 0.5,
    "ignored": 0.4,
    "chasing": 0.3,
    "chasing_in_context": 0.45,
    "still_alone": 0.3,
    "still_in_context": 0.55,
    "similar_to_earlier": 0.6,
    "final_now": 0.3,
}

_NEGATING_CUES = frozenset({"anger", "insult", "profanity"})
_NEGATORS = frozenset({"not", "no", "never", "nt", "n't"})
# Words that may stand between a negation and the word it negates ("not at all angry").
_NEGATION_BRIDGES = frozenset(
    _words(
        """
        actually, all, at, be, being, even, feeling, getting, particularly, really,
        remotely, so, that, to, too, trying, very
        """
    )
)
# Words that make a message a complaint (for comparing with earlier messages).
_PROBLEM_NORMS = frozenset(
    _words(
        """
        anyone, broken, cannot, damaged, declined, failed, failing, fails, late, lost,
        missing, n't, never, no, nobody, not, nothing, nt, still, wrong, yet
        """
    )
)
_STOPWORDS = frozenset(
    _words(
        """
        about, after, again, ago, all, also, and, any, anyone, are, been, but, can, could,
        did, does, for, from, get, got, had, has, have, hello, hey, hi, how, i'm, into, is,
        it's, its, just, like, never, nobody, not, nothing, now, one, our, out, please,
        said, say, says, since, some, still, than, thank, thanks, that, the, them, then,
        there, they, this, today, was, were, what, when, where, why, will, with, would,
        yesterday, yet, you, your
        """
    )
)
# Capitalised words that are names of things, not shouting.
_ACRONYMS = frozenset(
    _words(
        """
        2FA, AM, ASAP, BIC, BTW, CC, CEO, CVV, DHL, DPD, EAN, EU, FAQ, FYI, GB, HDMI, HR,
        IBAN, ID, IMPORTANT, IT, LED, NB, NI, OK, ORD, OTP, PC, PDF, PIN, PM, PO, PS, RMA,
        RT, SKU, SMS, TV, UK, UPS, URGENT, URL, US, USA, USB, VAT
        """
    )
)
_IGNORED_VERBS = tuple(
    _words(
        """
        reply, replied, replies, replying, answer, answers, answered, answering, help,
        helps, helped, helping, care, cares, call, called, calls, respond, responded,
        responds, get, got, gets, came, come, comes, doing, turned, contacted, emailed,
        fixed, listens, listening
        """
    )
)
_ORDINALS = tuple(
    _words(
        """
        second, third, fourth, fifth, sixth, tenth, 2nd, 3rd, 4th, 5th, umpteenth, nth,
        hundredth, millionth
        """
    )
)
_STILL_FOLLOWERS = _words(
    "not, nt, no, nothing, waiting, never, broken, missing, wrong, failed, declined, says, shows"
)
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9']*")
_STRONG_PUNCT_RE = re.compile(r"[!?]{3,}|\?!|!\?")
_MILD_PUNCT_RE = re.compile(r"[!?]{2}")
_CHASE_RE = re.compile(r"\b(?:hello|hallo|anyone|anybody|hey)\s*\?{2,}", re.IGNORECASE)
_CONTRACTION_RE = re.compile(r"\b(i)m\b", re.IGNORECASE)


@dataclass(frozen=True)
class FrustrationResult:
    """What :func:`detect_frustration` found in one message.

    Attributes:
        frustrated: Whether ``score`` reached the threshold.
        score: Combined strength of the cues, 0..1.
        cues: Names of the cues found, each once, in the order they were found (e.g.
            ``("insult", "caps", "repeated_complaint")``); listed also below the threshold.
    """

    frustrated: bool
    score: float
    cues: tuple[str, ...]


@dataclass(frozen=True)
class _Pipeline:
    nlp: Language
    phrases: PhraseMatcher
    patterns: Matcher
    phrase_weights: dict[str, tuple[str, float]]


def detect_frustration(
    text: str,
    *,
    earlier_customer_texts: Sequence[str] = (),
    threshold: float = DEFAULT_THRESHOLD,
) -> FrustrationResult:
    """Score how frustrated a customer's chat message sounds.

    Args:
        text: The customer's latest message.
        earlier_customer_texts: The customer's previous messages in this conversation,
            oldest first; a complaint repeated from them, or "still ..." after them,
            counts as a repeated complaint.
        threshold: Score at or above which the message counts as frustrated.

    Returns:
        The decision, the score in 0..1 and the names of the cues found.
    """
    clean = _normalise(text)
    if not clean.strip():
        return FrustrationResult(frustrated=False, score=0.0, cues=())
    earlier = [_normalise(t) for t in list(earlier_customer_texts)[-MAX_EARLIER:]]
    earlier = [t for t in earlier if t.strip()]

    pipeline = _pipeline()
    doc = pipeline.nlp.make_doc(clean)
    in_context = any(len(_WORD_RE.findall(previous)) >= 2 for previous in earlier)
    found: list[tuple[str, float]] = []
    found.extend(_lexicon_cues(doc, pipeline))
    found.extend(_pattern_cues(doc, pipeline, has_earlier=in_context))
    found.extend(_surface_cues(clean, doc))
    found.extend(_context_cues(doc, earlier, pipeline))

    remaining = 1.0
    for _, weight in found:
        remaining *= 1.0 - weight
    score = round(1.0 - remaining, 4)
    cues = tuple(dict.fromkeys(name for name, _ in found))
    return FrustrationResult(frustrated=score >= threshold, score=score, cues=cues)


def _normalise(text: str) -> str:
    """Bound the length, fold typographic quotes and drop control characters."""
    text = str(text)[:MAX_CHARS]
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    text = "".join(ch if ch in "\n\t" or unicodedata.category(ch)[0] != "C" else " " for ch in text)
    return _CONTRACTION_RE.sub(r"\1'm", text)


@functools.lru_cache(maxsize=1)
def _pipeline() -> _Pipeline:
    """Build the blank spaCy pipeline and its matchers once per process."""
    from knowledge.nlp import blank_english

    nlp = blank_english()
    from spacy.matcher import Matcher, PhraseMatcher

    phrases = PhraseMatcher(nlp.vocab, attr="NORM")
    weights: dict[str, tuple[str, float]] = {}
    for cue, weight, entries in _LEXICON:
        key = f"{cue}:{weight}"
        weights[key] = (cue, weight)
        phrases.add(key, [nlp.make_doc(entry) for entry in _words(entries)])

    patterns = Matcher(nlp.vocab)
    patterns.add("counted_repeat", [[{"LIKE_NUM": True}, {"NORM": "times"}]])
    patterns.add("counted_repeat", [[{"NORM": {"IN": list(_ORDINALS)}}, {"NORM": "time"}]])
    patterns.add(
        "ignored",
        [
            [
                {"NORM": {"IN": ["nobody", "noone"]}},
                {"IS_ALPHA": True, "OP": "?"},
                {"IS_ALPHA": True, "OP": "?"},
                {"NORM": {"IN": list(_IGNORED_VERBS)}},
            ],
            [
                {"NORM": "no"},
                {"NORM": "one"},
                {"IS_ALPHA": True, "OP": "?"},
                {"IS_ALPHA": True, "OP": "?"},
                {"NORM": {"IN": list(_IGNORED_VERBS)}},
            ],
        ],
    )
    patterns.add(
        "chasing",
        [[{"NORM": {"IN": ["anyone", "anybody"]}}, {"NORM": {"IN": ["there", "home", "around"]}}]],
    )
    patterns.add(
        "still",
        [
            [
                {"NORM": "still"},
                {"IS_ALPHA": True, "OP": "?"},
                {"NORM": {"IN": _STILL_FOLLOWERS}},
            ],
        ],
    )
    return _Pipeline(nlp=nlp, phrases=phrases, patterns=patterns, phrase_weights=weights)


def _negated(doc: Doc, start: int) -> bool:
    """Whether the match at token ``start`` follows a negation ("not angry", "not so mad")."""
    index = start - 1
    while index >= 0 and start - index <= 3:
        norm = doc[index].norm_
        if norm in _NEGATORS:
            return True
        if norm not in _NEGATION_BRIDGES:
            return False
        index -= 1
    return False


def _lexicon_cues(doc: Doc, pipeline: _Pipeline) -> Iterable[tuple[str, float]]:
    """Weighted lexicon matches, longest first, without overlaps or negated anger."""
    from spacy.util import filter_spans

    spans = filter_spans(pipeline.phrases(doc, as_spans=True))
    seen: set[str] = set()
    for span in spans:
        cue, weight = pipeline.phrase_weights[span.label_]
        phrase = span.text.lower()
        if phrase in seen:
            continue
        seen.add(phrase)
        if cue in _NEGATING_CUES and _negated(doc, span.start):
            continue
        yield cue, weight


def _pattern_cues(
    doc: Doc, pipeline: _Pipeline, *, has_earlier: bool
) -> Iterable[tuple[str, float]]:
    """Token patterns: "3 times", "nobody replied", "anyone there", "still not ..."."""
    labels = {doc.vocab.strings[match_id] for match_id, _, _ in pipeline.patterns(doc)}
    if "counted_repeat" in labels:
        yield "repeated_complaint", _WEIGHTS["counted_repeat"]
    if "ignored" in labels:
        yield "ignored", _WEIGHTS["ignored"]
    if "chasing" in labels:
        yield "chasing", _WEIGHTS["chasing_in_context" if has_earlier else "chasing"]
    if "still" in labels:
        yield "repeated_complaint", _WEIGHTS["still_in_context" if has_earlier else "still_alone"]
    words = [token.norm_ for token in doc if token.is_alpha]
    if len(words) >= 2 and words[-1] == "now":
        yield "demand", _WEIGHTS["final_now"]


def _surface_cues(text: str, doc: Doc) -> Iterable[tuple[str, float]]:
    """Shouting in capitals and runs of ``!``/``?``."""
    words = [w for w in _WORD_RE.findall(text) if len(w) >= 2]
    shouted = [w for w in words if w.isupper() and w.strip("'") not in _ACRONYMS]
    if len(shouted) >= 2 and len(shouted) / len(words) >= 0.6:
        yield "caps", _WEIGHTS["caps"]
    elif len(words) >= 3 and any(len(w) >= 3 for w in shouted):
        yield "emphasis", _WEIGHTS["emphasis"]
    if _STRONG_PUNCT_RE.search(text):
        yield "punctuation", _WEIGHTS["punctuation_strong"]
    elif _MILD_PUNCT_RE.search(text):
        yield "punctuation", _WEIGHTS["punctuation_mild"]
    if _CHASE_RE.search(text):
        yield "chasing", _WEIGHTS["chasing"]


def _content(doc: Doc) -> tuple[frozenset[str], frozenset[str]]:
    """Crude stems of a message's content words, and the identifiers it names."""
    stems: set[str] = set()
    ids: set[str] = set()
    for token in doc:
        norm = token.norm_
        if any(ch.isdigit() for ch in norm) and len(norm) >= 4:
            ids.add(norm)
        elif token.is_alpha and len(norm) >= 3 and norm not in _STOPWORDS:
            stems.add(norm[:5])
    return frozenset(stems), frozenset(ids)


def _is_complaint(doc: Doc) -> bool:
    """Whether a message reports a problem (a negation or a problem word)."""
    return any(token.norm_ in _PROBLEM_NORMS for token in doc)


def _context_cues(
    doc: Doc, earlier: Sequence[str], pipeline: _Pipeline
) -> Iterable[tuple[str, float]]:
    """The same complaint as an earlier message.

    A complaint repeats an earlier message when most of its content words (crude stems,
    matched with rapidfuzz so typos still match) appear in that message, or when the two
    read alike as a whole. Messages that name different order numbers never repeat.
    """
    if not earlier:
        return
    stems, ids = _content(doc)
    if not stems or not _is_complaint(doc):
        return
    current = " ".join(sorted(stems))
    for previous_text in earlier:
        previous_stems, previous_ids = _content(pipeline.nlp.make_doc(previous_text))
        if not previous_stems or (ids and previous_ids and not ids & previous_ids):
            continue
        covered = sum(
            process.extractOne(stem, previous_stems, scorer=fuzz.ratio, score_cutoff=80) is not None
            for stem in stems
        )
        alike = fuzz.token_sort_ratio(current, " ".join(sorted(previous_stems))) >= 75
        if covered >= min(2, len(stems)) and (alike or covered / len(stems) >= 0.66):
            yield "repeated_complaint", _WEIGHTS["similar_to_earlier"]
            return
