"""spaCy's blank pipelines are built without loading torch (about 180 MB per process)."""

from __future__ import annotations

from tests.helpers.probe import run_python

PROBE = """
import sys
from actions.parsing import extract_identifiers
from bot.handoff.frustration import detect_frustration
from knowledge.chunking import split_sentences

assert extract_identifiers("my order is ORD-100120").order_number == "ORD-100120"
assert detect_frustration("this is RIDICULOUS, worst service ever!!!").frustrated
assert len(split_sentences("One. Two.")) == 2
print("torch" in sys.modules and sys.modules["torch"] is not None)
import torch  # still importable afterwards, for code that needs it
print(torch.__name__)
"""


def test_spacy_users_do_not_load_torch_and_torch_still_imports() -> None:
    result = run_python(PROBE)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "torch"]
