"""What briefbot knows: embedding, the on-disk index, and search over it.

Documents come in from ``bot.ingest``; answerers in ``bot.answering`` read what ``search``
returns. Nothing here imports the answering or surface layers.
"""
