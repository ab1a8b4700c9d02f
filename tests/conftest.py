"""Shared fixtures for the core tests: one real encoder, one built index of the briefing, and
helpers that make documents folders and run the ``briefbot`` command.

Everything is real (the all-MiniLM-L6-v2 model, FAISS, SQLite, files on disk) but small: the
briefing's sentences are embedded once per session, and every test that needs its own index
starts from a copy of the session index, whose embedding cache makes rebuilds cheap.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

from bot.config import Settings

REPO = Path(__file__).resolve().parents[1]
BRIEFING_NAME = "briefing-us-missile-policy-2024-11.txt"
BRIEFING = REPO / "documents" / BRIEFING_NAME
if not BRIEFING.is_file():  # pragma: no cover - a checkout without documents/
    BRIEFING = REPO.parent / "shared" / BRIEFING_NAME
DEV_EVAL = REPO / "tests" / "data" / "dev_briefing.jsonl"

UMEROV_SENTENCE_START = "The relaxation of US conditions was conveyed to Ukraine during a November 12th call"

# A small second document (7 sentences, two headings) about something the briefing never
# mentions, so questions can tell the two apart.
EXTRA_NAME = "polar-station.md"
EXTRA_MD = """# Polar station logbook

## Supplies

The icebreaker Aurora delivered 14 tonnes of fuel to Halvard Station on March 3rd.
Chief engineer Mira Lindqvist signed for the delivery.
The station's two wind turbines were repaired the following week.

## Weather

A storm closed the runway for nine days in February.
Temperatures fell to minus 52 degrees during the storm.
The research team stayed indoors and calibrated the ice radar.
Flights resumed once the snow had been cleared.
"""


def briefing_text() -> str:
    return BRIEFING.read_text(encoding="utf-8")


def write_docs(folder: Path, files: dict[str, str | bytes] | None = None, briefing: bool = True) -> Path:
    """Create (or add to) a documents folder: the briefing plus ``files`` (name -> text or bytes)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if briefing:
        shutil.copyfile(BRIEFING, folder / BRIEFING_NAME)
    for name, data in (files or {}).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")
    return folder


def settings_for(root: Path, **changes) -> Settings:
    """Settings for ``root/docs`` and ``root/idx`` with every other value at its default."""
    return Settings(documents_dir=Path(root) / "docs", index_dir=Path(root) / "idx", **changes)


def normalized_text(docs_dir: str, name: str) -> str:
    """A document's normalized text, the one citation offsets point into (as the file is now)."""
    stat = (Path(docs_dir) / name).stat()
    return _normalized_text(str(docs_dir), name, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=256)
def _normalized_text(docs_dir: str, name: str, _mtime: int, _size: int) -> str:
    from bot.ingest.loaders import load_document

    return load_document(Path(docs_dir) / name, Path(docs_dir)).text


def assert_verbatim(engine, answer) -> None:
    """Every citation is the stored sentence and exactly the document's text at its offsets,
    and the answer quotes it whole (bold marks aside) with its [n] marker."""
    snap, _ = engine._current()
    shown = answer.answer.replace("**", "")
    for n, c in enumerate(answer.citations, 1):
        assert c.n == n
        source = normalized_text(str(engine.settings.documents_dir), c.document)
        assert source[c.start:c.end] == c.text
        assert snap.sentences.texts[snap.row_of[c.sentence_id]] == c.text
        assert c.sentence_id.startswith(f"{c.document}:")
        assert f"\u201c{c.text}\u201d [{n}]" in shown
        assert c.text and c.text == c.text.strip()


def tmp_leftovers(index_dir: Path) -> list[str]:
    """Files a dead or failed build may leave behind."""
    return sorted(p.name for p in Path(index_dir).iterdir() if p.name.startswith((".tmp-", ".CURRENT.")))


# --------------------------------------------------------------------------- session objects


@pytest.fixture(scope="session")
def encoder():
    """The real all-MiniLM-L6-v2 encoder, loaded once for the whole session."""
    from bot.knowledge.embed import Encoder

    enc = Encoder()
    assert enc.dimension == 384  # loads the model now, not inside the first test
    enc.encode(["warm up"])
    return enc


@pytest.fixture(scope="session")
def briefing_index(tmp_path_factory, encoder) -> Settings:
    """A built index of the briefing alone. Read-only: copy it (``workspace``) to change it."""
    from bot.knowledge.build import build_index

    root = tmp_path_factory.mktemp("briefing-index")
    write_docs(root / "docs")
    settings = settings_for(root)
    report, snap = build_index(settings, encoder)
    assert report.added == [BRIEFING_NAME] and not report.failed, report.to_json()
    assert snap is not None and len(snap.sentences) > 20
    return settings


@pytest.fixture(scope="session")
def briefing_engine(briefing_index, encoder):
    """One engine over the session index, for tests that only ask questions."""
    from bot.answering.engine import Engine

    engine = Engine(briefing_index, encoder=encoder)
    assert engine.has_index()
    return engine


@pytest.fixture(scope="session")
def briefing_version(briefing_engine) -> str:
    return briefing_engine.status().version


# --------------------------------------------------------------------------- per-test copies


@pytest.fixture
def workspace(tmp_path, briefing_index) -> Settings:
    """A private copy of the session documents and index (embedding cache included)."""
    shutil.copytree(briefing_index.documents_dir, tmp_path / "docs")
    shutil.copytree(briefing_index.index_dir, tmp_path / "idx", ignore=shutil.ignore_patterns(".lock"))
    return settings_for(tmp_path)


@pytest.fixture
def make_engine(encoder):
    """``make_engine(settings)`` -> an Engine that shares the session encoder."""
    from bot.answering.engine import Engine

    def make(settings: Settings, **kwargs):
        return Engine(settings, encoder=encoder, **kwargs)

    return make


@pytest.fixture
def cli_main(monkeypatch, encoder):
    """Run ``briefbot`` in-process (``cli_main([...]) -> exit code``) with the session encoder."""
    import bot.answering.engine as engine_module
    from bot.surfaces import cli

    monkeypatch.setattr(engine_module, "Encoder", lambda model="": encoder)
    for name in list(os.environ):
        if name.startswith("BRIEFBOT_") or name == "DISCORD_TOKEN":
            monkeypatch.delenv(name)

    def run(argv: list[str]) -> int:
        return cli.main([*argv, "--env-file", os.devnull])

    yield run


@pytest.fixture(autouse=True)
def _restore_log_levels():
    """``briefbot``'s start-up (``runtime.configure``) sets process-wide log levels and handler
    filters, as it should in a real process; in this one test process they must not leak into
    the next test's ``caplog``."""
    names = ["", "bot", *logging.root.manager.loggerDict]
    levels = {n: logging.getLogger(n).level for n in names}
    root = logging.getLogger()
    handlers = {h: (h.level, list(h.filters)) for h in root.handlers}
    yield
    for n, level in levels.items():
        logging.getLogger(n).setLevel(level)
    for h, (level, filters) in handlers.items():
        h.setLevel(level)
        h.filters[:] = filters


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIEFBOT_") and k != "DISCORD_TOKEN"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    return env


def briefbot_command() -> list[str]:
    script = Path(sys.executable).with_name("briefbot")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "bot.surfaces.cli"]


def run_briefbot(args: list[str], cwd: Path, stdin: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """The installed ``briefbot`` command in a subprocess, with no .env and no BRIEFBOT_* variables."""
    return subprocess.run(
        [*briefbot_command(), *args], cwd=cwd, input=stdin, capture_output=True, text=True,
        timeout=timeout, env=clean_env(),
    )
