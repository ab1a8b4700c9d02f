"""Process-wide settings, set once at start-up by the CLI (and so by ``serve``), not per call.

Environment variables that libraries read when first imported (model hubs, tokenizer threads),
thread counts for the numeric libraries, and log levels: all in one place, applied before the
heavy modules are imported, so no module changes them at import or on each call.
"""

from __future__ import annotations

import logging
import os
import sys

_configured = False
CPU_COUNT = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
ENCODE_THREADS = CPU_COUNT  # a build's batches want every core

# Libraries that must never reach a model hub (there is none here, and nothing downloads
# weights at run time), and tokenizers that must not fork thread pools inside worker threads.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
# Loggers that are chatty at INFO/DEBUG about things an operator can't act on.
QUIET_LOGGERS = {"bm25s": logging.WARNING, "httpx": logging.WARNING, "pypdf": logging.ERROR}


def offline_env() -> None:
    """Before any model library is used (the CLI calls it at start, ``Encoder`` when made)."""
    for name, value in OFFLINE_ENV.items():
        os.environ.setdefault(name, value)


def configure(verbose: bool = False, log_level: str | None = None) -> None:
    """Apply the process-wide settings; idempotent (a second call only changes log levels)."""
    global _configured
    offline_env()
    level = logging.INFO if verbose else getattr(logging, (log_level or "WARNING").upper(), logging.WARNING)
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    root.setLevel(level)
    # Some libraries set their own logger's level when imported (bm25s: DEBUG), after this
    # runs; a filter on the handlers holds whatever they do.
    for handler in root.handlers:
        if not any(isinstance(f, _QuietFilter) for f in handler.filters):
            handler.addFilter(_QuietFilter())
    # Our own warnings are shown as one-line messages by the CLI; the log repeats them only with -v.
    logging.getLogger("bot").setLevel(logging.INFO if verbose else max(level, logging.ERROR))
    for name, quiet in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(max(quiet, level))
    _configured = True


class _QuietFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        top = record.name.split(".", 1)[0]
        return record.levelno >= QUIET_LOGGERS.get(top, logging.NOTSET)


def is_configured() -> bool:
    return _configured
