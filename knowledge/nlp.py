"""Blank spaCy pipelines, made without loading torch.

Concierge uses spaCy only as rules over a blank English pipeline (sentence splitting,
EntityRuler/Matcher patterns). Importing spaCy imports thinc, which imports torch when it
is installed (about 180 MB resident and a second of start-up) although a blank pipeline
never uses it. :func:`blank_english` imports spaCy with torch hidden, unless torch is
already loaded in the process (then nothing is saved and nothing is hidden). Code that
needs torch later in the same process can still import it: only thinc's own optional
torch support stays off, which blank pipelines do not use.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spacy.language import Language

__all__ = ["blank_english", "import_spacy_without_torch"]


def import_spacy_without_torch() -> None:
    """Import spaCy (and thinc) so that thinc does not load torch."""
    if "spacy" in sys.modules or "torch" in sys.modules:
        return
    sys.modules["torch"] = None  # type: ignore[assignment]  # makes `import torch` fail
    try:
        import spacy  # noqa: F401
    finally:
        if sys.modules.get("torch", object()) is None:
            del sys.modules["torch"]


def blank_english() -> Language:
    """A new blank English pipeline (tokenizer only), built without loading torch."""
    import_spacy_without_torch()
    import spacy

    return spacy.blank("en")
