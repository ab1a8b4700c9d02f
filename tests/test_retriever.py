"""The LangChain view of the index: ``BriefingRetriever`` over a real engine, ``EncoderEmbeddings``."""

from __future__ import annotations

import numpy as np
import pytest

from bot.knowledge.retriever import BriefingRetriever, EncoderEmbeddings
from conftest import UMEROV_SENTENCE_START


def test_retriever_returns_cited_sentences(briefing_engine):
    docs = BriefingRetriever(engine=briefing_engine, k=3).invoke("When was Umerov informed?")
    assert docs and docs[0].page_content.startswith(UMEROV_SENTENCE_START)
    meta = docs[0].metadata
    assert meta["document"].endswith(".txt") and meta["end"] > meta["start"]
    assert meta["sentence_id"] == docs[0].id


def test_retriever_is_empty_when_the_briefings_dont_say(briefing_engine):
    question = "What is the recipe for a Victoria sponge cake?"
    assert BriefingRetriever(engine=briefing_engine).invoke(question) == []
    assert BriefingRetriever(engine=briefing_engine, only_supported=False, k=2).invoke(question)


def test_retriever_refuses_something_that_cannot_retrieve():
    with pytest.raises(ValueError):
        BriefingRetriever(engine=object())


def test_embeddings_match_the_index_encoder(briefing_engine):
    emb = EncoderEmbeddings(briefing_engine.encoder)
    q = np.asarray(emb.embed_query("missile range"))
    d = np.asarray(emb.embed_documents(["missile range", "a recipe for cake"]))
    assert q.shape == (briefing_engine.encoder.dimension,)
    assert d[0] @ q > 0.95 and d[1] @ q < d[0] @ q
