"""Turning retrieved passages into answers with verbatim citations: the extractive answerer
(the default), the optional LLM answerer with claim checks, conversations, and the ``Engine``
that the surfaces (CLI, Discord) talk to."""
