"""spaCy identifier extraction."""

from __future__ import annotations

import socket

import pytest

from actions.parsing import Identifiers, extract_identifiers, get_nlp, without_identifiers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my email is jane.doe@example.com", Identifiers(email="jane.doe@example.com")),
        ("Mail: Jane.Doe@Example.COM.", Identifiers(email="jane.doe@example.com")),
        (
            "email:ops@northwind-logistics.example",
            Identifiers(email="ops@northwind-logistics.example"),
        ),
        (
            "<mailto:first+tag@mail.example.co.uk>",
            Identifiers(email="first+tag@mail.example.co.uk"),
        ),
        ("account ACC-10042", Identifiers(account_number="ACC-10042")),
        ("it's acc-10042!", Identifiers(account_number="ACC-10042")),
        ("order (ord-123456)", Identifiers(order_number="ORD-123456")),
        (
            "ORD-123456/ACC-20001",
            Identifiers(account_number="ACC-20001", order_number="ORD-123456"),
        ),
        (
            "Acc-20001, Ord-100120 and billing@fjord.example",
            Identifiers(
                email="billing@fjord.example", account_number="ACC-20001", order_number="ORD-100120"
            ),
        ),
        ("first ACC-10042 then ACC-10057", Identifiers(account_number="ACC-10042")),
    ],
)
def test_identifiers_are_found_and_normalised(text: str, expected: Identifiers) -> None:
    assert extract_identifiers(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        None,
        "hello, where is my parcel?",
        "ACC-1004 and ACC-100421",  # wrong lengths
        "ORD-12345",
        "ACC10042",
        "me at example dot com",
        "user@localhost",
        "order 123456",
    ],
)
def test_nothing_is_found(text: str | None) -> None:
    result = extract_identifiers(text)

    assert result == Identifiers()
    assert result.is_empty


def test_pipeline_is_blank_english_with_an_entity_ruler_and_cached() -> None:
    nlp = get_nlp()

    assert nlp.lang == "en"
    assert nlp.pipe_names == ["entity_ruler"]
    assert get_nlp() is nlp
    assert [(ent.text, ent.label_) for ent in nlp("ACC-10042 ORD-123456 a@b.example").ents] == [
        ("ACC-10042", "ACCOUNT_NUMBER"),
        ("ORD-123456", "ORDER_NUMBER"),
        ("a@b.example", "EMAIL"),
    ]


def test_no_network_is_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("no network")

    monkeypatch.setattr(socket, "create_connection", refuse)

    assert extract_identifiers("ACC-10042").account_number == "ACC-10042"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("where are ORD-123456 and ord-654321?", "where are and ?"),
        (
            "Jane.Doe@Example.COM: my card, acc-10042, was charged twice",
            ": my card, , was charged twice",
        ),
        ("how do I return a jacket", "how do I return a jacket"),
        ("ORD-123456", "ORD-123456"),  # nothing else to search with
        ("   ", "   "),
    ],
)
def test_without_identifiers_cuts_every_one_as_typed(text: str, expected: str) -> None:
    assert without_identifiers(text) == expected
