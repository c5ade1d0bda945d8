"""A tiny ONNX query encoder export for fast tests: no torch, no model download, no export.

``write_tiny_export(folder)`` writes the same three files a real export has
(``model.int8.onnx``, ``tokenizer.json``, ``manifest.json``): a word-level tokenizer and
an ONNX graph that looks each token up in a small seeded embedding table, mean-pools over
the attention mask and L2-normalises, so ``knowledge.onnx_encoder.OnnxEncoder`` runs it
exactly as it runs the real MiniLM export. ``TinyEncoder`` computes the same vectors in
numpy: build an index with it, then query through the export.

Usage:
    from tests.helpers.tiny_onnx import TinyEncoder, write_tiny_export

    export = write_tiny_export(tmp_path / "encoder-onnx")
    index = KnowledgeIndex.build(articles, TinyEncoder(export), query_encoder_dir=export)
"""

from __future__ import annotations

import datetime
import json
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

TINY_NAME = "tiny-onnx-encoder"
TINY_DIMENSION = 16
_VOCAB_SIZE = 512
_SEED = 7


def _table() -> np.ndarray:
    rng = np.random.default_rng(_SEED)
    return rng.normal(size=(_VOCAB_SIZE, TINY_DIMENSION)).astype(np.float32)


def _word_id(word: str) -> int:
    return 2 + zlib.crc32(word.encode("utf-8")) % (_VOCAB_SIZE - 2)


class TinyEncoder:
    """The tiny export's vectors computed in numpy with its own tokenizer (builds indexes)."""

    def __init__(self, export: Path, name: str = TINY_NAME) -> None:
        from tokenizers import Tokenizer

        self.name = name
        self.dimension = TINY_DIMENSION
        self._table = _table()
        self._tokenizer = Tokenizer.from_file(str(export / "tokenizer.json"))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            ids = self._tokenizer.encode(text).ids or [1]
            pooled = self._table[ids].mean(axis=0)
            vectors[row] = pooled / max(float(np.linalg.norm(pooled)), 1e-9)
        return vectors


def write_tiny_export(
    folder: Path,
    *,
    words: Sequence[str] = (),
    name: str = TINY_NAME,
    source_sha256: str = "tiny-source",
) -> Path:
    """Write a tiny export into ``folder`` (created) and return it.

    Args:
        folder: Where to write.
        words: Extra texts whose words the tokenizer must know (others become [UNK]).
        name: The encoder name recorded in the manifest.
        source_sha256: The source fingerprint recorded in the manifest.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    from knowledge.onnx_encoder import (
        MANIFEST_FILE,
        MODEL_FILE,
        TOKENIZER_FILE,
        OnnxEncoderManifest,
        file_sha256,
    )

    folder.mkdir(parents=True, exist_ok=True)
    splitter = pre_tokenizers.Whitespace()
    vocab = {"[PAD]": 0, "[UNK]": 1}
    for text in [*words, _COMMON_TEXT]:
        for word, _ in splitter.pre_tokenize_str(text.lower()):
            vocab.setdefault(word, _word_id(word))
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = splitter
    tokenizer.save(str(folder / TOKENIZER_FILE))

    batch_tokens = ["batch", "tokens"]
    inputs = [
        helper.make_tensor_value_info(name_, TensorProto.INT64, batch_tokens)
        for name_ in ("input_ids", "attention_mask", "token_type_ids")
    ]
    output = helper.make_tensor_value_info(
        "embedding", TensorProto.FLOAT, ["batch", TINY_DIMENSION]
    )
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["tokens"]),
        helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask", "last_axis"], ["mask3"]),
        helper.make_node("Mul", ["tokens", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "token_axis"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask3", "token_axis"], ["counts"], keepdims=0),
        helper.make_node("Div", ["summed", "counts"], ["pooled"]),
        helper.make_node("LpNormalization", ["pooled"], ["embedding"], axis=1, p=2),
    ]
    initializers = [
        numpy_helper.from_array(_table(), "table"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "last_axis"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "token_axis"),
    ]
    graph = helper.make_graph(nodes, "tiny", inputs, [output], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(folder / MODEL_FILE))

    manifest = OnnxEncoderManifest(
        name=name,
        dimension=TINY_DIMENSION,
        max_length=64,
        source_path="tests/helpers/tiny_onnx.py",
        source_sha256=source_sha256,
        model_sha256=file_sha256(folder / MODEL_FILE),
        tokenizer_sha256=file_sha256(folder / TOKENIZER_FILE),
        probe_min_cosine=1.0,
        exported_at=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        versions={},
    )
    (folder / MANIFEST_FILE).write_text(
        json.dumps(manifest.model_dump(mode="json"), indent=2), encoding="utf-8"
    )
    return folder


_COMMON_TEXT = (
    "How do I return an item? Can I send back something I bought? How do returns work? "
    "Start a return from My orders within 30 days of delivery. How do I reset my password? "
    "I forgot my password. Cannot log in to my account. Where is my parcel? Track my "
    "delivery. When will my order arrive? Do you offer volume discounts for businesses? "
    "Bulk pricing for office chairs. warm up"
)
