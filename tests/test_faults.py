"""Injected faults: a full disk half way through a build, SIGKILL during a build, damaged or
foreign index files, and two builds at once. After each, the old index must keep answering,
the next build must succeed, and no temporary files may stay behind."""

from __future__ import annotations

import hashlib
import json
import re
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import faiss
import numpy as np
import pytest
from filelock import FileLock

import bot.knowledge.build as build_module
import bot.knowledge.store as store
from bot.knowledge.build import BuildBusy, build_index
from bot.knowledge.store import IndexCorrupt, IndexMissing, load_snapshot
from conftest import BRIEFING_NAME, EXTRA_MD, REPO, UMEROV_SENTENCE_START, clean_env, run_briefbot, tmp_leftovers, write_docs

UMEROV = "When was Umerov informed?"


def live_version(settings, encoder) -> str:
    return load_snapshot(Path(settings.index_dir), model=encoder.name).version


def move_the_call(settings) -> None:
    """Edit the briefing so the Austin-Umerov call moves from November 12th to November 14th."""
    path = Path(settings.documents_dir) / BRIEFING_NAME
    text = path.read_text(encoding="utf-8")
    assert text.count("November 12th call") == 1
    path.write_text(text.replace("November 12th call", "November 14th call"), encoding="utf-8")


def assert_answers(engine, day: str, version: str | None = None) -> None:
    answer = engine.ask(UMEROV)
    assert answer.answer.startswith(day), answer.answer
    assert answer.citations and answer.citations[0].text.startswith(UMEROV_SENTENCE_START.replace("12th", day[-4:]))
    if version is not None:
        assert answer.index_version == version


def lock_is_free(index_dir: Path) -> bool:
    lock = FileLock(str(Path(index_dir) / ".lock"))
    try:
        lock.acquire(timeout=0)
    except Exception:
        return False
    lock.release()
    return True


def no_space(*_args, **_kwargs):
    raise OSError(28, "No space left on device")


# --------------------------------------------------------------------------- a write fails


def _fail_faiss(monkeypatch):
    monkeypatch.setattr(store.faiss, "write_index", no_space)


def _fail_meta(monkeypatch):
    monkeypatch.setattr(store, "_write_meta", no_space)


def _fail_manifest(monkeypatch):
    monkeypatch.setattr(store, "_write_json_durably", no_space)


def _fail_pointer(monkeypatch):
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst).name == store.CURRENT:
            no_space()
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(store.os, "replace", replace)


@pytest.mark.parametrize("inject", [_fail_faiss, _fail_meta, _fail_manifest, _fail_pointer],
                         ids=["faiss", "meta", "manifest", "pointer"])
def test_full_disk_half_way_leaves_the_old_index_answering(workspace, encoder, make_engine, monkeypatch, inject):
    engine = make_engine(workspace)
    old = engine.status().version
    move_the_call(workspace)
    with monkeypatch.context() as patch:
        inject(patch)
        with pytest.raises(build_module.DiskFull, match=r"is full \(No space left on device\); the previous index "
                                                       r"is still in use"):
            engine.build()
        assert tmp_leftovers(workspace.index_dir) == []  # the partial folder went at once
    # the engine that tried, a new engine and the files on disk all still serve the old version
    assert_answers(engine, "November 12th", old)
    assert_answers(make_engine(workspace), "November 12th", old)
    assert live_version(workspace, encoder) == old
    assert lock_is_free(workspace.index_dir)

    report = engine.build()
    assert report.changed == [BRIEFING_NAME] and report.swapped
    assert report.sentences_embedded == 0  # the failed build had already cached the new sentence
    assert tmp_leftovers(workspace.index_dir) == []
    assert_answers(engine, "November 14th", report.index_version)
    assert_answers(make_engine(workspace), "November 14th", report.index_version)
    assert report.index_version != old


def test_full_disk_in_the_cli_is_one_line_and_the_old_index_answers(workspace, encoder, cli_main, capsys,
                                                                    monkeypatch):
    old = live_version(workspace, encoder)
    move_the_call(workspace)
    monkeypatch.setattr(store, "_write_meta", no_space)
    code = cli_main(["index", "--documents", str(workspace.documents_dir), "--index", str(workspace.index_dir)])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("briefbot index:")]
    assert len(lines) == 1 and "is full" in lines[0] and "free some space" in lines[0]
    assert live_version(workspace, encoder) == old
    assert tmp_leftovers(workspace.index_dir) == []


def test_same_named_version_never_replaces_the_live_folder(workspace, encoder, make_engine, monkeypatch):
    """A rebuild within the same second as the live build gets the same version name; its swap
    must not delete the live folder first (a failure there would leave no index at all)."""
    old = live_version(workspace, encoder)
    monkeypatch.setattr(build_module, "new_version_name", lambda _key: old)
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst).name.startswith("v-"):
            no_space()
        return real(src, dst, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(store.os, "replace", replace)
        with pytest.raises(OSError, match="No space left"):
            build_index(workspace, encoder, rebuild=True)
    assert live_version(workspace, encoder) == old
    assert_answers(make_engine(workspace), "November 12th", old)

    report, snap = build_index(workspace, encoder, rebuild=True)
    assert report.index_version == snap.version != old  # two builds, two versions
    assert live_version(workspace, encoder) == snap.version
    assert tmp_leftovers(workspace.index_dir) == []


# --------------------------------------------------------------------------- SIGKILL


KILLED_BUILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from bot.config import Settings
    from bot.knowledge import embed, store
    from bot.knowledge.build import build_index

    stage = sys.argv[3]
    if stage == "embedding":
        original_encode = embed.Encoder.encode

        def encode(self, texts, *args, **kwargs):
            print("EMBEDDING", len(texts), flush=True)
            vectors = original_encode(self, texts[: len(texts) // 2], *args, **kwargs)
            time.sleep(300)  # half embedded: on an idle machine the rest would finish before the kill
            return vectors

        embed.Encoder.encode = encode
    else:
        original_meta = store._write_meta

        def write_meta(path, snap):
            original_meta(path, snap)
            print("WRITING", path.parent.name, flush=True)
            time.sleep(300)

        store._write_meta = write_meta
    report, _ = build_index(Settings(documents_dir=Path(sys.argv[1]), index_dir=Path(sys.argv[2])), embed.Encoder())
    print("DONE", report.to_json(), flush=True)
    """
)


def start_build(settings, stage: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", KILLED_BUILD, str(settings.documents_dir), str(settings.index_dir), stage],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env(),
    )


def wait_for(proc: subprocess.Popen, marker: str, timeout: float = 150) -> str:
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    try:
        line = proc.stdout.readline()
    finally:
        watchdog.cancel()
    if not line.startswith(marker):
        proc.kill()
        raise AssertionError(f"build subprocess said {line!r}; stderr: {proc.stderr.read()[-2000:]}")
    return line


def kill9(proc: subprocess.Popen) -> None:
    assert proc.poll() is None, "the build finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    proc.stdout.close()
    proc.stderr.close()


def generated_sentences(n: int) -> str:
    """``n`` distinct sentences no cache has seen (the embedding must really run)."""
    import random

    rng = random.Random(time.time_ns())
    items = ["blankets", "generators", "water pumps", "radios", "medical kits", "tyres", "rations"]
    places = ["northern", "southern", "eastern", "western", "river", "harbour", "mountain"]
    return "\n".join(
        f"Convoy {i} carried {rng.randint(2, 900)} crates of {rng.choice(items)} to the "
        f"{rng.choice(places)} depot, code {rng.getrandbits(40):x}, after a delay of {rng.randint(1, 48)} hours."
        for i in range(n)
    ) + "\n"


@pytest.mark.slow
def test_sigkill_while_embedding_keeps_old_index_and_lock_free(workspace, encoder, make_engine):
    old = live_version(workspace, encoder)
    n = 160  # the subprocess embeds half of them, then waits to be killed
    (Path(workspace.documents_dir) / "convoys.txt").write_text(generated_sentences(n), encoding="utf-8")
    proc = start_build(workspace, "embedding")
    try:
        line = wait_for(proc, "EMBEDDING")
        assert int(line.split()[1]) == n  # nothing came from the cache
        time.sleep(0.5)
        # a second builder meanwhile is refused with a message, not left to corrupt anything
        with pytest.raises(BuildBusy, match="another build is still running"):
            build_index(workspace, encoder, lock_timeout=0.2)
        kill9(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert lock_is_free(workspace.index_dir)
    engine = make_engine(workspace)
    assert_answers(engine, "November 12th", old)
    assert [d.name for d in engine.sources()] == [BRIEFING_NAME]

    report = engine.build()
    assert report.added == ["convoys.txt"] and report.unchanged == [BRIEFING_NAME]
    assert report.sentences_embedded == n
    assert tmp_leftovers(workspace.index_dir) == []
    assert lock_is_free(workspace.index_dir)
    assert sorted(d.name for d in engine.sources()) == [BRIEFING_NAME, "convoys.txt"]
    assert_answers(make_engine(workspace), "November 12th", report.index_version)


@pytest.mark.slow
def test_sigkill_while_writing_leaves_only_temp_files_that_the_next_build_removes(workspace, encoder, make_engine):
    old = live_version(workspace, encoder)
    move_the_call(workspace)
    proc = start_build(workspace, "writing")
    try:
        wait_for(proc, "WRITING")
        leftovers = tmp_leftovers(workspace.index_dir)
        assert any(name.startswith(".tmp-") for name in leftovers)
        kill9(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert lock_is_free(workspace.index_dir)
    assert live_version(workspace, encoder) == old
    assert_answers(make_engine(workspace), "November 12th", old)
    assert tmp_leftovers(workspace.index_dir) == leftovers  # nothing else touched them

    report, _ = build_index(workspace, encoder)
    assert report.changed == [BRIEFING_NAME]
    assert report.sentences_embedded == 0  # the killed build had cached its one new sentence
    assert tmp_leftovers(workspace.index_dir) == []
    assert_answers(make_engine(workspace), "November 14th", report.index_version)


# --------------------------------------------------------------------------- damaged index


def _live(idx: Path) -> Path:
    return idx / (idx / "CURRENT").read_text().strip()


def _edit_manifest(idx: Path, **changes) -> None:
    path = _live(idx) / "manifest.json"
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data))


def _truncate_faiss(idx):
    path = _live(idx) / "sentences.faiss"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garble_faiss(idx):  # same size, so only reading it can tell
    path = _live(idx) / "sentences.faiss"
    path.write_bytes(b"\x00garbage" * (path.stat().st_size // 8) + b"\x00" * (path.stat().st_size % 8))


def _garble_meta(idx):
    path = _live(idx) / "meta.sqlite"
    path.write_bytes(b"\xff" * path.stat().st_size)


def _foreign_faiss(idx):
    """Another model's vectors (768 dimensions) under this index's manifest."""
    path = _live(idx) / "sentences.faiss"
    n = faiss.read_index(str(path)).ntotal
    other = faiss.IndexFlatIP(768)
    other.add(faiss.randn(n * 768, 1).reshape(n, 768))
    faiss.write_index(other, str(path))
    # a manifest that records the foreign file faithfully: only the dimension check can tell
    _edit_manifest(idx, files={**json.loads((_live(idx) / "manifest.json").read_text())["files"],
                               "sentences.faiss": {"size": path.stat().st_size,
                                                   "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}})


DAMAGE = {
    "truncated faiss": (_truncate_faiss, r"sentences\.faiss is \d+ bytes, expected \d+ \(truncated\?\)"),
    "garbled faiss": (_garble_faiss, r"sentences\.faiss does not match its recorded checksum"),
    "deleted meta": (lambda idx: (_live(idx) / "meta.sqlite").unlink(), r"meta\.sqlite is missing"),
    "garbled meta": (_garble_meta, r"meta\.sqlite does not match its recorded checksum"),
    "garbled manifest": (lambda idx: (_live(idx) / "manifest.json").write_text("{not json"), r"manifest\.json is unreadable"),
    "manifest not an object": (lambda idx: (_live(idx) / "manifest.json").write_text("null"), r"manifest\.json"),
    "manifest without version": (lambda idx: _edit_manifest(idx, version=None), r"manifest\.json"),
    "other model": (lambda idx: _edit_manifest(idx, model="sentence-transformers/all-mpnet-base-v2"),
                    r"built with model 'sentence-transformers/all-mpnet-base-v2'"),
    "other dimension": (lambda idx: _edit_manifest(idx, dimension=768), r"dimension"),
    "foreign vectors": (_foreign_faiss, r"dimension"),
    "old format": (lambda idx: _edit_manifest(idx, format=99), r"format 99"),
    "CURRENT to nothing": (lambda idx: (idx / "CURRENT").write_text("v-20200101-000000-abcdef\n"),
                           r"names 'v-20200101-000000-abcdef', which is not an index folder"),
    "CURRENT outside": (lambda idx: (idx / "CURRENT").write_text("../../etc\n"), r"not an index folder"),
    "CURRENT empty": (lambda idx: (idx / "CURRENT").write_text(""), r"not an index folder"),
    "CURRENT binary": (lambda idx: (idx / "CURRENT").write_bytes(b"\xff\xfe\x00\x9c garbage"), r"CURRENT"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_index_is_detected_then_rebuilt_and_answers(workspace, encoder, make_engine, damage):
    hurt, message = DAMAGE[damage]
    idx = Path(workspace.index_dir)
    old = live_version(workspace, encoder)
    hurt(idx)
    with pytest.raises(IndexCorrupt, match=message):
        load_snapshot(idx, model=encoder.name, dimension=encoder.dimension)

    engine = make_engine(workspace)
    answer = engine.ask(UMEROV)  # detects, rebuilds from the cache, answers; no exception
    assert answer.answer.startswith("November 12th") and not answer.error
    fresh = load_snapshot(idx, model=encoder.name, dimension=encoder.dimension)
    assert fresh.version == answer.index_version
    assert [(d.name, d.sentences) for d in engine.sources()] == [(BRIEFING_NAME, len(fresh.sentences))]
    assert answer.index_version != old
    assert tmp_leftovers(idx) == []


def _index_files(idx: Path) -> list[str]:
    return sorted(json.loads((_live(idx) / "manifest.json").read_text())["files"])


def _flip_middle_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x5A
    path.write_bytes(bytes(data))


def test_every_index_file_is_listed_with_its_checksum(workspace):
    idx = Path(workspace.index_dir)
    files = json.loads((_live(idx) / "manifest.json").read_text())["files"]
    on_disk = sorted(p.relative_to(_live(idx)).as_posix() for p in _live(idx).rglob("*")
                     if p.is_file() and p.name != "manifest.json")
    assert sorted(files) == on_disk and len(on_disk) >= 5  # faiss, meta, names and the bm25 files
    for rel, entry in files.items():
        data = (_live(idx) / rel).read_bytes()
        assert entry == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@pytest.mark.parametrize("rel", ["sentences.faiss", "meta.sqlite", "bm25/indptr.csc.index.npy",
                                 "bm25/data.csc.index.npy", "bm25/indices.csc.index.npy", "bm25/vocab.index.json",
                                 "bm25/params.index.json"])
def test_same_size_damage_to_any_index_file_is_detected_and_rebuilt(workspace, encoder, make_engine, rel):
    idx = Path(workspace.index_dir)
    if rel not in _index_files(idx):
        pytest.skip(f"{rel} is not part of this bm25s version's format")
    old = live_version(workspace, encoder)
    path = _live(idx) / rel
    size = path.stat().st_size
    _flip_middle_byte(path)
    assert path.stat().st_size == size
    with pytest.raises(IndexCorrupt, match=re.escape(f"{rel} does not match its recorded checksum")):
        load_snapshot(idx, model=encoder.name)
    engine = make_engine(workspace)
    answer = engine.ask(UMEROV)  # never served from the damaged files: rebuilt from the cache first
    assert answer.answer.startswith("November 12th") and not answer.error
    assert answer.index_version != old
    assert load_snapshot(idx, model=encoder.name).version == answer.index_version


def test_every_listed_file_is_covered_by_the_same_size_test(workspace):
    covered = {"sentences.faiss", "meta.sqlite", "bm25/indptr.csc.index.npy", "bm25/data.csc.index.npy",
               "bm25/indices.csc.index.npy", "bm25/vocab.index.json", "bm25/params.index.json"}
    assert set(_index_files(Path(workspace.index_dir))) <= covered


def test_a_changed_fact_in_meta_sqlite_is_never_quoted(workspace, encoder, make_engine):
    """One sentence's date rewritten in place (same length, same file size): a wrong quote
    would be served as verbatim if only sizes were checked."""
    import sqlite3

    idx = Path(workspace.index_dir)
    meta = _live(idx) / "meta.sqlite"
    size = meta.stat().st_size
    db = sqlite3.connect(meta)
    with db:
        changed = db.execute("UPDATE sentences SET text = replace(text, 'November 12th', 'November 19th') "
                             "WHERE text LIKE '%November 12th%'").rowcount
    db.close()
    assert changed >= 1 and meta.stat().st_size == size
    with pytest.raises(IndexCorrupt, match="meta.sqlite does not match its recorded checksum"):
        load_snapshot(idx, model=encoder.name)
    answer = make_engine(workspace).ask(UMEROV)
    assert answer.answer.startswith("November 12th") and "November 19th" not in answer.answer


def test_a_new_pipeline_version_re_reads_unchanged_documents(workspace, encoder, monkeypatch):
    import bot.knowledge.build as build_module
    import bot.knowledge.store as store_module

    before = load_snapshot(Path(workspace.index_dir))
    assert json.loads((_live(Path(workspace.index_dir)) / "manifest.json").read_text())["pipeline"] == \
        store_module.PIPELINE_VERSION
    report, _ = build_index(workspace, encoder)
    assert not report.swapped  # same pipeline, same bytes: nothing to do
    monkeypatch.setattr(build_module, "PIPELINE_VERSION", store_module.PIPELINE_VERSION + 1)
    monkeypatch.setattr(store_module, "PIPELINE_VERSION", store_module.PIPELINE_VERSION + 1)
    report, snap = build_index(workspace, encoder)
    assert report.swapped and report.unchanged == [BRIEFING_NAME]  # re-read, but not "changed"
    assert report.changed == report.added == []
    assert snap.pipeline == store_module.PIPELINE_VERSION
    assert snap.sentences.ids == before.sentences.ids
    assert load_snapshot(Path(workspace.index_dir)).pipeline == store_module.PIPELINE_VERSION


def test_rebuild_does_not_call_unchanged_documents_changed(workspace, encoder):
    report, snap = build_index(workspace, encoder, rebuild=True)
    assert report.swapped and report.unchanged == [BRIEFING_NAME] and report.changed == []


def test_json_rebuild_of_a_damaged_index_says_why_on_stderr(workspace, cli_main, capsys):
    _garble_meta(Path(workspace.index_dir))
    code = cli_main(["index", "--json", "--documents", str(workspace.documents_dir), "--index", str(workspace.index_dir)])
    captured = capsys.readouterr()
    assert code == 0
    assert json.loads(captured.out)["unchanged"] == [] and json.loads(captured.out)["added"] == [BRIEFING_NAME]
    assert "briefbot index: the existing index could not be used" in captured.err and "checksum" in captured.err


def test_snapshot_vectors_keep_their_faiss_index_alive(workspace, encoder):
    """The vectors are FAISS's own memory (no copy); the array must keep its owner alive."""
    import gc

    snap = load_snapshot(Path(workspace.index_dir))
    vectors, first = snap.vectors, snap.vectors[0].copy()
    expected = snap.faiss_index.reconstruct(0)
    del snap
    gc.collect()
    junk = [np.ones(1 << 16, np.float32) for _ in range(200)]  # reuse any freed memory
    assert np.array_equal(vectors[0], first) and np.allclose(first, expected)
    assert not vectors.flags.writeable
    del junk


def test_damaged_index_build_says_why_it_rebuilt(workspace, encoder):
    _truncate_faiss(Path(workspace.index_dir))
    report, snap = build_index(workspace, encoder)
    assert report.swapped and report.added == [BRIEFING_NAME]
    assert report.sentences_embedded == 0  # the embedding cache survives a damaged index
    assert len(report.notes) == 1
    assert report.notes[0].startswith("the existing index could not be used (")
    assert "truncated" in report.notes[0] and report.notes[0].endswith("rebuilt from scratch")
    assert report.notes[0] in report.summary()


def test_missing_index_is_missing_not_corrupt(tmp_path, encoder):
    with pytest.raises(IndexMissing, match="no index"):
        load_snapshot(tmp_path / "nothing-here", model=encoder.name)


def test_damaged_embedding_cache_rows_are_recomputed(workspace, encoder):
    import sqlite3

    db = sqlite3.connect(Path(workspace.index_dir) / "embeddings.sqlite")
    with db:
        db.execute("UPDATE vectors SET vec = x'00010203'")
    db.close()
    report, snap = build_index(workspace, encoder, rebuild=True)
    assert report.sentences_embedded == len(snap.sentences)


@pytest.mark.slow
def test_cli_ask_on_a_damaged_index_prints_a_readable_line_and_answers(workspace, encoder):
    _truncate_faiss(Path(workspace.index_dir))
    out = run_briefbot(["ask", UMEROV, "--documents", str(workspace.documents_dir),
                        "--index", str(workspace.index_dir)], cwd=Path(workspace.index_dir).parent)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    first = out.stderr.strip().splitlines()[0]
    assert first.startswith("(") and "truncated" in first and "building the index" in first
    assert out.stdout.startswith("November 12th. ")
    assert "[1] " in out.stdout and "Rustem Umerov" in out.stdout


# --------------------------------------------------------------------------- two builders


def test_second_builder_is_refused_with_a_message_and_nothing_breaks(workspace, encoder, make_engine, cli_main,
                                                                    capsys, monkeypatch):
    idx = Path(workspace.index_dir)
    old = live_version(workspace, encoder)
    move_the_call(workspace)
    holder = FileLock(str(idx / ".lock"))
    holder.acquire()
    try:
        started = time.perf_counter()
        with pytest.raises(BuildBusy) as info:
            build_index(workspace, encoder, lock_timeout=0.3)
        assert time.perf_counter() - started < 5
        message = str(info.value)
        assert "another build is still running" in message and str(idx) in message and "try again later" in message

        import functools

        import bot.answering.engine as engine_module

        monkeypatch.setattr(engine_module, "build_index", functools.partial(build_index, lock_timeout=0.3))
        code = cli_main(["index", "--documents", str(workspace.documents_dir), "--index", str(idx)])
        err = capsys.readouterr().err
        assert code == 1
        assert "briefbot index: another build is still running" in err and "Traceback" not in err
    finally:
        holder.release()

    assert live_version(workspace, encoder) == old
    assert_answers(make_engine(workspace), "November 12th", old)
    assert tmp_leftovers(idx) == []
    report, _ = build_index(workspace, encoder, lock_timeout=0.3)
    assert report.changed == [BRIEFING_NAME]


def test_second_builder_waits_for_the_first(workspace, encoder):
    holder = FileLock(str(Path(workspace.index_dir) / ".lock"), thread_local=False)  # released by a timer thread
    holder.acquire()
    threading.Timer(0.7, holder.release).start()
    started = time.perf_counter()
    report, _ = build_index(workspace, encoder, lock_timeout=30)
    assert time.perf_counter() - started >= 0.6
    assert report.unchanged == [BRIEFING_NAME]


# --------------------------------------------------------------------------- uploads


from bot.ingest.uploads import UploadRefused, sanitize_filename, save_upload  # noqa: E402

MB = 1024 * 1024
TEXT = b"A short uploaded note about the depot. It has two sentences.\n"


@pytest.mark.parametrize("raw, safe", [
    ("../../etc/passwd.txt", "passwd.txt"),
    ("..\\..\\windows\\system.ini.txt", "system-ini.txt"),
    ("/abs/path.md", "path.md"),
    (".hidden.txt", "hidden.txt"),
    ("\uff42\uff52\uff49\uff45\uff46.\uff54\uff58\uff54", "brief.txt"),  # full-width letters fold to ASCII
    ("re\u200bport\u202e.txt", "re-port.txt"),  # zero-width and direction controls don't survive
    ("brief\x00ing.TXT", "brief-ing.txt"),
    ("Notes (final) v2.docx", "Notes-final-v2.docx"),
    ("évaluation été.md", "évaluation-été.md"),
])
def test_sanitize_filename(raw, safe):
    assert sanitize_filename(raw) == safe


@pytest.mark.parametrize("raw", ["..", "../", "/", ".txt", "....", "\u200b.md", "***"])
def test_names_with_nothing_usable_are_refused(raw):
    with pytest.raises(UploadRefused, match="no usable characters"):
        sanitize_filename(raw)


@pytest.mark.parametrize("raw", ["con.txt", "\uff43\uff4f\uff4e.\uff54\uff58\uff54", "NUL.md", "com1.txt", "lpt9.docx"])
def test_windows_device_names_are_refused(raw):
    with pytest.raises(UploadRefused, match="reserved device name"):
        sanitize_filename(raw)


def test_save_upload_stays_inside_the_documents_folder(tmp_path):
    docs = tmp_path / "docs"
    for raw in ("../../etc/passwd.txt", "/abs/path.md", ".hidden.txt"):
        path = save_upload(docs, raw, TEXT, max_bytes=MB)
        assert path.parent == docs and not path.name.startswith(".")
        assert path.read_bytes() == TEXT
    assert sorted(p.name for p in docs.iterdir()) == ["hidden.txt", "passwd.txt", "path.md"]
    assert not (tmp_path / "etc").exists() and not Path("/abs/path.md").exists()


@pytest.mark.parametrize("name, data, message", [
    ("malware.exe", TEXT, r"^\.exe can't be indexed; send one of \.docx, \.htm, \.html, \.md, \.pdf, \.txt$"),
    ("evil\u202etxt.exe", TEXT, r"\.exe can't be indexed"),
    ("README", TEXT, r"^files without an extension can't be indexed"),
    ("big.txt", b"x" * (MB + 1), r"^the file is 1\.0 MB; the limit is 1 MB$"),
    ("blank.txt", b" \n\t ", r"^the file is empty$"),
])
def test_wrong_type_oversize_and_empty_uploads_are_refused(tmp_path, name, data, message):
    with pytest.raises(UploadRefused, match=message):
        save_upload(tmp_path / "docs", name, data, max_bytes=MB)
    assert not (tmp_path / "docs").exists() or list((tmp_path / "docs").iterdir()) == []


def test_upload_never_silently_overwrites(tmp_path):
    docs = tmp_path / "docs"
    save_upload(docs, "note.txt", TEXT, max_bytes=MB)
    with pytest.raises(UploadRefused, match="a document named note.txt already exists; .*overwrite"):
        save_upload(docs, "note.txt", b"Replacement text.", max_bytes=MB)
    with pytest.raises(UploadRefused, match="already exists"):
        save_upload(docs, "../note.txt", b"Replacement text.", max_bytes=MB)  # same name after cleaning
    with pytest.raises(UploadRefused, match="a document named note.txt already exists"):
        save_upload(docs, "NOTE.TXT", b"Replacement text.", max_bytes=MB)  # same name to a person
    assert (docs / "note.txt").read_bytes() == TEXT
    save_upload(docs, "Note.txt", b"Replacement text.", max_bytes=MB, overwrite=True)
    assert (docs / "note.txt").read_bytes() == b"Replacement text."
    assert [p.name for p in docs.iterdir()] == ["note.txt"]  # no .upload-* temp file left


def test_engine_add_document_indexes_the_upload(workspace, make_engine):
    engine = make_engine(workspace.with_(upload_max_mb=0.01))
    name, report = engine.add_document("../Polar Station.md", EXTRA_MD.encode())
    assert name == "Polar-Station.md"
    assert report.added == [name] and report.unchanged == [BRIEFING_NAME]
    answer = engine.ask("Who signed for the fuel delivery?")
    assert answer.answer.startswith("Mira Lindqvist") and answer.citations[0].document == name
    with pytest.raises(UploadRefused, match=r"^the file is 24\.4 KB; the limit is 10\.2 KB$"):
        engine.add_document("huge.txt", b"word " * 5000)
    with pytest.raises(UploadRefused, match="already exists"):
        engine.add_document("Polar Station.md", b"# Other\n\nOther text.")


# --------------------------------------------------------------------------- upload names and overwrites


from hypothesis import given, settings as hyp_settings, strategies as st  # noqa: E402


@hyp_settings(max_examples=400, deadline=None)
@given(st.text(min_size=1, max_size=160))
def test_sanitize_filename_is_idempotent(raw):
    try:
        once = sanitize_filename(raw)
    except UploadRefused:
        return
    assert sanitize_filename(once) == once
    assert len(once.encode()) <= 230 and "/" not in once and not once.startswith(".")


@pytest.mark.parametrize("raw", ["a" * 99 + "-b.txt", "a" * 99 + " b.txt", "x" * 99 + "_y.md", "é" * 99 + ".z.txt"])
def test_a_name_cut_at_a_separator_is_the_same_name_after_a_second_pass(raw):
    once = sanitize_filename(raw)
    assert sanitize_filename(once) == once and not once.split(".")[0].endswith(("-", "_"))


def test_long_cjk_names_are_refused_by_their_encoded_length(tmp_path):
    name = "報告書" * 30 + ".txt"  # 90 characters, 274 bytes in UTF-8: over the 255-byte file-name limit
    with pytest.raises(UploadRefused, match=r"^that file name is too long \(\d+ bytes in UTF-8, the limit is 230\)"):
        save_upload(tmp_path / "docs", name, TEXT, max_bytes=MB)
    assert not (tmp_path / "docs").exists() or list((tmp_path / "docs").iterdir()) == []
    short = save_upload(tmp_path / "docs", "報告書" * 20 + ".txt", TEXT, max_bytes=MB)  # 184 bytes: fine
    assert short.read_bytes() == TEXT


def test_overwrite_with_a_name_that_changes_on_a_second_pass_keeps_the_original(workspace, make_engine):
    """The issue's case: a 100-character cut ending in "-" was stripped only on a second pass,
    so the backup was looked up under one name and the upload saved under another; when the
    new content failed to index, the original was gone."""
    engine = make_engine(workspace)
    raw = "a" * 99 + "-b.md"
    name, report = engine.add_document(raw, EXTRA_MD.encode())
    assert report.added == [name]
    original = (Path(workspace.documents_dir) / name).read_bytes()
    bad = b"---\n\n***\n"  # saves (it is text) but has no text once loaded
    with pytest.raises(UploadRefused, match="could not be indexed"):
        engine.add_document(raw, bad, overwrite=True)
    assert (Path(workspace.documents_dir) / name).read_bytes() == original  # restored, under its own name
    assert sorted(p.name for p in Path(workspace.documents_dir).iterdir()) == sorted([BRIEFING_NAME, name])
    answer = engine.ask("Who signed for the fuel delivery?")
    assert answer.answer.startswith("Mira Lindqvist") and answer.citations[0].document == name


# --------------------------------------------------------------------------- one build coordinator


def _pause_listing(monkeypatch, listed: threading.Event, go: threading.Event):
    """The first build stops right after it listed the documents folder."""
    real = build_module.list_documents
    calls = []

    def list_documents(folder):
        paths = real(folder)
        calls.append(len(paths))
        if len(calls) == 1:
            listed.set()
            assert go.wait(60)
        return paths

    monkeypatch.setattr(build_module, "list_documents", list_documents)
    return calls


def test_a_joined_build_returns_its_own_true_report(workspace, make_engine, monkeypatch):
    engine = make_engine(workspace)
    engine.status()
    listed, go = threading.Event(), threading.Event()
    calls = _pause_listing(monkeypatch, listed, go)
    results = {}
    first = threading.Thread(target=lambda: results.setdefault("first", engine.build()))
    first.start()
    assert listed.wait(60)
    # a document arrives after the running build listed the folder; then a second caller asks
    write_docs(Path(workspace.documents_dir), {"late.txt": b"The late note mentions the depot inspection."},
               briefing=False)
    second = threading.Thread(target=lambda: results.setdefault("second", engine.build(rebuild=True)))
    second.start()
    time.sleep(0.3)
    go.set()
    first.join(120)
    second.join(120)
    a, b = results["first"], results["second"]
    assert a is not b and len(calls) == 2  # two builds, each with its own listing
    assert "late.txt" not in a.added and a.unchanged == [BRIEFING_NAME]
    assert b.added == ["late.txt"] and b.unchanged == [BRIEFING_NAME]  # its own rebuild, its own truth
    assert b.swapped and engine.status().version == b.index_version
    assert [d.name for d in engine.sources()] == sorted([BRIEFING_NAME, "late.txt"])


def test_an_upload_racing_a_build_is_indexed_when_it_says_so(workspace, make_engine, monkeypatch):
    engine = make_engine(workspace)
    engine.status()
    listed, go = threading.Event(), threading.Event()
    _pause_listing(monkeypatch, listed, go)
    results = {}
    builder = threading.Thread(target=lambda: results.setdefault("build", engine.build()))
    builder.start()
    assert listed.wait(60)
    uploader = threading.Thread(target=lambda: results.setdefault(
        "upload", engine.add_document("Polar Station.md", EXTRA_MD.encode())))
    uploader.start()
    time.sleep(0.3)
    go.set()
    builder.join(120)
    uploader.join(120)
    name, report = results["upload"]
    assert report.added == [name]  # "indexed" ...
    assert name in {d.name for d in engine.sources()}  # ... and really in the live index
    assert engine.ask("Who signed for the fuel delivery?").citations[0].document == name


def test_an_index_swap_frees_the_old_snapshot(workspace, make_engine):
    import gc
    import weakref

    engine = make_engine(workspace)
    engine.status()
    old = weakref.ref(engine._state[0])
    move_the_call(workspace)
    assert engine.build().swapped
    gc.collect()
    assert old() is None
