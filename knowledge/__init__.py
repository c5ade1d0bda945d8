"""Concierge's knowledge base: Markdown articles, a faiss index and the editor CLI.

The names below are importable from ``knowledge`` directly; they are imported on first
use so that ``import knowledge.articles`` does not load numpy, faiss or spaCy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from knowledge.answering import Answer, AnswerPolicy, answer_question
    from knowledge.articles import (
        Article,
        ArticleError,
        ArticleProblem,
        load_articles,
        parse_article,
        validate_articles,
    )
    from knowledge.encoder import (
        Encoder,
        EncoderUnavailableError,
        SentenceTransformerEncoder,
        default_encoder,
    )
    from knowledge.head import DEFAULT_HEAD, HeadConfig
    from knowledge.index import (
        Hit,
        IndexCorruptError,
        IndexMismatchError,
        IndexNotBuiltError,
        KnowledgeIndex,
        KnowledgeIndexError,
        Manifest,
    )
    from knowledge.onnx_encoder import OnnxEncoder
    from knowledge.store import LiveKnowledgeBase, build_and_publish, load_current, publish
    from knowledge.threads import limit_native_threads

_EXPORTS = {
    "Answer": "knowledge.answering",
    "AnswerPolicy": "knowledge.answering",
    "answer_question": "knowledge.answering",
    "DEFAULT_HEAD": "knowledge.head",
    "HeadConfig": "knowledge.head",
    "OnnxEncoder": "knowledge.onnx_encoder",
    "limit_native_threads": "knowledge.threads",
    "Article": "knowledge.articles",
    "ArticleError": "knowledge.articles",
    "ArticleProblem": "knowledge.articles",
    "load_articles": "knowledge.articles",
    "parse_article": "knowledge.articles",
    "validate_articles": "knowledge.articles",
    "Encoder": "knowledge.encoder",
    "EncoderUnavailableError": "knowledge.encoder",
    "SentenceTransformerEncoder": "knowledge.encoder",
    "default_encoder": "knowledge.encoder",
    "Hit": "knowledge.index",
    "IndexCorruptError": "knowledge.index",
    "IndexMismatchError": "knowledge.index",
    "IndexNotBuiltError": "knowledge.index",
    "KnowledgeIndex": "knowledge.index",
    "KnowledgeIndexError": "knowledge.index",
    "Manifest": "knowledge.index",
    "LiveKnowledgeBase": "knowledge.store",
    "build_and_publish": "knowledge.store",
    "load_current": "knowledge.store",
    "publish": "knowledge.store",
}

__all__ = [
    "DEFAULT_HEAD",
    "Answer",
    "AnswerPolicy",
    "Article",
    "ArticleError",
    "ArticleProblem",
    "Encoder",
    "EncoderUnavailableError",
    "HeadConfig",
    "Hit",
    "IndexCorruptError",
    "IndexMismatchError",
    "IndexNotBuiltError",
    "KnowledgeIndex",
    "KnowledgeIndexError",
    "LiveKnowledgeBase",
    "Manifest",
    "OnnxEncoder",
    "SentenceTransformerEncoder",
    "answer_question",
    "build_and_publish",
    "default_encoder",
    "limit_native_threads",
    "load_articles",
    "load_current",
    "parse_article",
    "publish",
    "validate_articles",
]


def __getattr__(name: str) -> Any:
    """Import an exported name from its module on first access."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'knowledge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
