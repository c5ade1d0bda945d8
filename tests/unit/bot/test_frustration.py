"""Frustration detection: clear cases, context, negation and hostile input."""

from __future__ import annotations

import time

import pytest

from bot.handoff.frustration import (
    DEFAULT_THRESHOLD,
    FrustrationResult,
    detect_frustration,
)


@pytest.mark.parametrize(
    "text",
    [
        "This is ridiculous, worst service I have ever had",
        "you are completely useless",
        "I'm furious, the wardrobe arrived smashed",
        "wtf is going on with my delivery",
        "How many times do I have to give you my order number?",
        "I will leave a 1 star review if this isn't sorted",
        "I want to speak to a manager",
    ],
)
def test_clear_positives_are_frustrated(text: str) -> None:
    result = detect_frustration(text)

    assert result.frustrated
    assert result.score >= DEFAULT_THRESHOLD
    assert result.cues


@pytest.mark.parametrize(
    "text",
    [
        "my payment got declined",
        "where is my parcel?",
        "How do I return a lamp?",
        "Can I change the delivery address on my order?",
        "thanks, that helped!",
        "I hate to bother you, but has my refund been processed?",
        "please kill the ink subscription, I no longer need it",
        "Is this email asking for my password a scam?",
        "how do I fix this?",
    ],
)
def test_plain_questions_are_not_frustrated(text: str) -> None:
    result = detect_frustration(text)

    assert not result.frustrated
    assert result.score < DEFAULT_THRESHOLD


def test_result_is_frozen_and_typed() -> None:
    result = detect_frustration("useless")

    assert isinstance(result, FrustrationResult)
    assert isinstance(result.cues, tuple)
    assert 0.0 <= result.score <= 1.0
    with pytest.raises(AttributeError):
        result.score = 0.0  # type: ignore[misc]


def test_same_complaint_twice_is_a_repeated_complaint() -> None:
    earlier = ["the tracking says delivered but my parcel never arrived", "ok"]

    alone = detect_frustration("my parcel never arrived")
    repeated = detect_frustration("my parcel never arrived", earlier_customer_texts=earlier)

    assert not alone.frustrated
    assert repeated.frustrated
    assert "repeated_complaint" in repeated.cues


def test_still_not_working_after_earlier_messages_is_frustrated() -> None:
    earlier = ["I can't log into my account", "I used the reset link you sent"]

    assert not detect_frustration("still not working").frustrated
    result = detect_frustration("still not working", earlier_customer_texts=earlier)
    assert result.frustrated
    assert "repeated_complaint" in result.cues


def test_follow_up_about_another_order_is_not_a_repeat() -> None:
    earlier = ["Can you check ORD-100232 please?"]

    result = detect_frustration("Can you also check ORD-100233?", earlier_customer_texts=earlier)

    assert not result.frustrated


def test_shouting_adds_to_a_complaint() -> None:
    calm = detect_frustration("my order still has not been delivered")
    shouted = detect_frustration("MY ORDER STILL HAS NOT BEEN DELIVERED")

    assert "caps" in shouted.cues
    assert shouted.score > calm.score
    assert shouted.frustrated


def test_capitals_alone_are_not_enough() -> None:
    result = detect_frustration("HOW DO I RETURN AN ITEM")

    assert result.cues == ("caps",)
    assert not result.frustrated


def test_acronyms_are_not_shouting() -> None:
    result = detect_frustration("Please send the VAT invoice for ORD-100231 as a PDF")

    assert "caps" not in result.cues
    assert "emphasis" not in result.cues


def test_negated_anger_is_not_counted() -> None:
    assert not detect_frustration("not angry, just asking when the sofa arrives").frustrated
    assert not detect_frustration("I'm not frustrated at all, only curious").frustrated
    assert detect_frustration("I'm angry, just tell me when the sofa arrives").frustrated


def test_not_happy_is_still_frustrated() -> None:
    assert detect_frustration("I am NOT happy with this").frustrated


def test_threshold_is_respected() -> None:
    text = "seriously??"
    score = detect_frustration(text).score

    assert detect_frustration(text, threshold=score).frustrated
    assert not detect_frustration(text, threshold=min(1.0, score + 0.01)).frustrated


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_is_not_frustrated(text: str) -> None:
    assert detect_frustration(text) == FrustrationResult(frustrated=False, score=0.0, cues=())


def test_hundred_kilobytes_return_quickly() -> None:
    detect_frustration("warm up the pipeline")
    text = ("where is my order ORD-100231? " * 4000)[:100_000]

    started = time.perf_counter()
    result = detect_frustration(text, earlier_customer_texts=[text] * 20)
    elapsed = time.perf_counter() - started

    assert elapsed < 1.0
    assert 0.0 <= result.score <= 1.0


def test_binary_garbage_does_not_crash() -> None:
    garbage = bytes(range(256)).decode("latin-1") * 50 + "\ud800\udfff\x00\x1b[31m"

    result = detect_frustration(garbage, earlier_customer_texts=[garbage, "\x00"])

    assert isinstance(result, FrustrationResult)
    assert 0.0 <= result.score <= 1.0
