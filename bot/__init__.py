"""briefbot: answers questions about briefing documents with verbatim, checkable citations.

Data flows one way: ``ingest`` (load, normalize, segment) -> ``knowledge`` (embed, store,
search) -> ``answering`` (extractive, LLM, citation checks) -> ``surfaces`` (CLI, Discord).
"""

__version__ = "0.1.0"
