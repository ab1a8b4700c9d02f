"""Collections without Discord: the registry, the layout, following builds on disk, the CLI's
``--collection``, ``briefbot health``, retention, and the bounded per-user maps."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from bot.config import Settings
from bot.answering.collections import (SHARED, SHARED_MARK, Collections, UnknownCollection, parse_mapping,
                                       resolve)
from bot.surfaces import cli
from bot.surfaces.discord.health import check
from bot.surfaces.discord.ratelimit import PRUNE_EVERY, RateLimiter
from discord_fake.fixtures import BRIEFING, shared_engine

DOC = ("# Gamma depot\n\nThe Gamma depot opened its new cold store on June 21st. "
       "The cold store holds Pelican vaccines for the Ostrava clinics.\n")


def settings(tmp: Path, **kw) -> Settings:
    return Settings(documents_dir=tmp / "documents", index_dir=tmp / "index", feedback_path=tmp / "data" / "f.jsonl", **kw)


def test_default_layout_and_mapping(tmp_path):
    s = settings(tmp_path, collections="team=/srv/t/docs:/srv/t/idx")
    assert resolve(s, "123").documents_dir == tmp_path / "documents" / "123"
    assert resolve(s, "123").index_dir == tmp_path / "index" / "123"
    assert resolve(s, "team").documents_dir == Path("/srv/t/docs")
    for bad in ("../x", "a/b", "", ".hidden"):
        with pytest.raises(UnknownCollection):
            resolve(s, bad)
    with pytest.raises(ValueError, match="NAME=DOCUMENTS_DIR:INDEX_DIR"):
        parse_mapping("team=/only/docs")


def test_registry_shares_one_encoder_evicts_idle_engines_and_keeps_busy_ones(tmp_path):
    reg = Collections(settings(tmp_path, max_loaded_collections=2), encoder=shared_engine().encoder)
    a, b = reg.engine("a"), reg.engine("b")
    assert a.encoder is b.encoder is shared_engine().encoder
    assert (tmp_path / "documents" / "a").is_dir()  # created on first use
    with reg.using("a"):
        reg.engine("c")
        reg.engine("d")
        assert "a" in reg.loaded()  # in use: never evicted under a running answer or build
    assert len(reg.loaded()) <= 2 and reg.evictions >= 2
    assert reg.engine("b") is not b  # evicted, loaded again on demand


def test_own_collection_first_then_shared_marked(tmp_path):
    s = settings(tmp_path, shared_collection=True)
    (tmp_path / "documents" / SHARED).mkdir(parents=True)
    shutil.copy(BRIEFING, tmp_path / "documents" / SHARED / BRIEFING.name)
    (tmp_path / "documents" / "42").mkdir(parents=True)
    (tmp_path / "documents" / "42" / "gamma.md").write_text(DOC, encoding="utf-8")
    reg = Collections(s, encoder=shared_engine().encoder)
    own = reg.ask("42", "When did the Gamma depot open its new cold store?")
    assert "June 21st" in own.answer and not own.citations[0].title.endswith(SHARED_MARK)
    shared = reg.ask("42", "What did Biden drop his opposition to?")
    assert not shared.abstained and all(c.title.endswith(SHARED_MARK) for c in shared.citations)
    dm = reg.ask(None, "When did the Gamma depot open its new cold store?")
    assert "June 21st" not in dm.answer and not any(c.document == "gamma.md" for c in dm.citations)
    other = reg.ask("43", "When did the Gamma depot open its new cold store?")  # a server with nothing of its own
    assert "June 21st" not in other.answer


def test_engine_follows_a_build_made_by_another_engine(tmp_path):
    from bot.answering.engine import Engine

    s = settings(tmp_path, index_check_seconds=0.0)
    (tmp_path / "documents").mkdir()
    shutil.copy(BRIEFING, tmp_path / "documents" / BRIEFING.name)
    serving = Engine(s, encoder=shared_engine().encoder)
    serving.build()
    before = serving.status().version
    assert "June 21st" not in serving.ask("When did the Gamma depot open its new cold store?").answer
    (tmp_path / "documents" / "gamma.md").write_text(DOC, encoding="utf-8")
    time.sleep(1.1)  # version names carry the second
    Engine(s, encoder=shared_engine().encoder).build()  # "another process"
    answer = serving.ask("When did the Gamma depot open its new cold store?")
    assert "June 21st" in answer.answer and answer.index_version != before


def test_cli_collection_flag_picks_the_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = cli.build_parser().parse_args(["status", "--collection", "777", "--documents", "d", "--index", "i"])
    s = cli._settings(args)
    assert s.documents_dir == Path("d") / "777" and s.index_dir == Path("i") / "777" and s.collection == "777"


def test_health_reads_the_heartbeat(tmp_path, capsys, monkeypatch, cli_main):
    monkeypatch.chdir(tmp_path)
    s = settings(tmp_path)
    ok, line = check(s)
    assert not ok and "no heartbeat" in line
    (tmp_path / "data").mkdir()
    beat = tmp_path / "data" / "health.json"
    beat.write_text(json.dumps({"at": time.time(), "connected": True, "in_flight": 0}))
    assert check(s)[0]
    beat.write_text(json.dumps({"at": time.time() - 600, "connected": True}))
    ok, line = check(s)
    assert not ok and "ago" in line
    assert cli_main(["health"]) == 1
    beat.write_text(json.dumps({"at": time.time(), "connected": True, "in_flight": 0}))
    assert cli_main(["health"]) == 0  # data/health.json in this folder is fresh
    assert "healthy" in capsys.readouterr().out
    assert cli_main(["health", "--collection", "x"]) == 1  # serve/health take no --collection
    assert "--collection is for" in capsys.readouterr().err


def test_retention_purges_old_answers_and_their_message_links(tmp_path):
    from bot.answering.types import Answer
    from bot.surfaces.discord.feedback import AnswerStore

    store = AnswerStore(tmp_path / "f.jsonl")
    store.record("aaaaaa1", "c1", 1, Answer(question="q", answer="a", abstained=False), scope="5")
    store.link_message(11, "aaaaaa1")
    assert store.get("aaaaaa1", "5") is not None and store.get("aaaaaa1", "6") is None
    assert store.purge(30, now=time.time() + 29 * 86400) == 0
    assert store.purge(30, now=time.time() + 31 * 86400) == 1
    assert store.get("aaaaaa1") is None and store.by_message(11) is None
    store.close()


def test_rate_limiter_forgets_users_whose_limits_ran_out():
    now = [0.0]
    limiter = RateLimiter(cooldown=5, per_minute=1000, clock=lambda: now[0])
    for user in range(PRUNE_EVERY * 4):
        now[0] += 1.0
        assert limiter.acquire(user, guild_id=user % 7).ok
        limiter.release(user)
    assert len(limiter._last) < PRUNE_EVERY + 10  # not every user ever seen
    assert len(limiter._guild) <= 7


def test_a_build_in_one_collection_does_not_block_answers_in_another(tmp_path):
    reg = Collections(settings(tmp_path), encoder=shared_engine().encoder)
    (tmp_path / "documents" / "busy").mkdir(parents=True)
    (tmp_path / "documents" / "quiet").mkdir(parents=True)
    shutil.copy(BRIEFING, tmp_path / "documents" / "quiet" / BRIEFING.name)
    reg.ask("quiet", "What did Biden drop his opposition to?")
    for i in range(30):
        (tmp_path / "documents" / "busy" / f"n{i}.txt").write_text(
            " ".join(f"Sentence {i}-{j} about the depot number {j} in region {i}." for j in range(40)), encoding="utf-8")
    started = threading.Event()
    finished = []

    def build():
        started.set()
        with reg.using("busy") as engine:
            engine.build()
        finished.append(time.monotonic())

    t = threading.Thread(target=build)
    t.start()
    started.wait()
    answered = []
    while t.is_alive() and len(answered) < 3:
        a = reg.ask("quiet", "What did Biden drop his opposition to?")
        answered.append((time.monotonic(), a.abstained))
    t.join()
    assert answered and not answered[0][1]
    assert answered[0][0] < finished[0]  # answered while the other server's build still ran
