"""briefbot's index in LangChain's terms: the hybrid sentence search as a ``BaseRetriever``
(each ``Document`` is one source sentence with its citation metadata) and the encoder as
``Embeddings``. Kept apart from the core so answering a question doesn't import LangChain."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever

from bot.knowledge.search import Retrieval


@runtime_checkable
class Retrieves(Protocol):
    """What the retriever needs: ``bot.answering.engine.Engine`` fits (so does a collection's)."""

    def retrieve(self, question: str, history=(), k: int = 5) -> Retrieval: ...


class BriefingRetriever(BaseRetriever):
    """``engine`` is anything that ``Retrieves`` (an ``Engine``); ``k`` sentences come back, best first.

    With ``only_supported`` (the default) an empty list means the briefings don't cover the
    question, the same judgement the answerers use.
    """

    engine: Retrieves
    k: int = 5
    only_supported: bool = True

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        found = self.engine.retrieve(query, k=self.k)
        if self.only_supported and not found.supported:
            return []
        return [
            Document(
                page_content=p.text,
                id=p.sentence_id,
                metadata={
                    "sentence_id": p.sentence_id,
                    "document": p.document,
                    "title": p.title,
                    "start": p.start,
                    "end": p.end,
                    "heading": p.heading,
                    "location": p.location,
                    "score": p.score,
                },
            )
            for p in found.passages
        ]


class EncoderEmbeddings(Embeddings):
    """The same MiniLM vectors briefbot indexes with (``bot.knowledge.embed.Encoder``)."""

    def __init__(self, encoder):
        self.encoder = encoder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encoder.encode(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encoder.encode_query(text).tolist()
