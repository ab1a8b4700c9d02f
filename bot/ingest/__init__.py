"""Ingestion: files in the documents folder -> normalized text -> citable sentences.

Import from the submodules (``bot.ingest.loaders``, ``bot.ingest.segment``). Nothing is
re-exported here because a package attribute named ``segment`` would shadow the
``bot.ingest.segment`` module.
"""
