"""Mixed load through the fake Discord: many users asking while an admin re-indexes and uploads.

The issue-6 load benchmark. Simulated users (each waits for its answer, the bot's per-user
cooldown and up to ``--think`` seconds of reading before asking again) send /ask through the
real discord.py client to the real Engine (real model, FAISS) over a temporary copy of
``documents/`` plus a few small generated briefings. A fifth of the way in, an admin edits one
of those briefings and runs /reindex; a little later (while that build may still run) the admin
runs /upload with a new briefing. Reported as JSON on stdout (exit status 1 if a check fails):

- every interaction (questions, /reindex, /upload) acknowledged within Discord's 3 s;
- every question answered;
- every answer consistent with ONE index version: the version in its footer is one that
  existed, and every sentence it quotes (with its document title) is in that version; an answer
  quoting sentences that no single version holds would be a mix of old and new;
- answer latency p50/p95 (interaction sent -> first answer message), the versions seen, and
  the CPU load of the (shared) machine while it ran.

    python bench/discord_mixed_load.py                       # 200 questions, 20 users
    python bench/discord_mixed_load.py --questions 40 --users 8 --out bench/results/mixed.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from discord_load import QUESTIONS, ROOT, pct, start_bot, stop_bot  # noqa: E402  (puts ROOT, tests/ on sys.path)

from bot.config import Settings  # noqa: E402
from bot.surfaces.discord.render import unquote  # noqa: E402
from discord_fake.server import MANAGE_GUILD, MEMBER_PERMS  # noqa: E402

ACK_LIMIT_S = 3.0

# Generated briefings. The logistics one is edited before /reindex: its convoy and fuel
# sentences exist only in the old version or only in the new one, so an answer quoting a mix
# of versions would show. The field hospital note arrives by /upload.
LOGISTICS = "logistics-northern-corridor.md"
LOGISTICS_OLD = """# Logistics update: northern corridor

## Convoy

The relief convoy will depart Rzeszow on March 14th with 42 trucks.
Major Ilse Brandt commands the convoy escort.

## Fuel

Fuel stocks at the forward depot stand at 40,000 litres.
The depot at Lublin is closed for maintenance until April.
"""
LOGISTICS_NEW = LOGISTICS_OLD.replace("March 14th with 42 trucks", "March 21st with 56 trucks").replace(
    "40,000 litres", "65,000 litres")
TRAINING = ("training-schedule.txt", """Winter training schedule

The winter training cycle starts on January 8th at the Drawsko range.
About 1,200 recruits take part in the first rotation.
Live-fire exercises are planned for the third week of the cycle.
""")
UPLOAD = ("field-hospital-note.txt", b"""Field hospital note

The field hospital at Przemysl opened on February 2nd.
It has 120 beds and two operating theatres.
Dr Tomas Wieczorek leads the surgical team.
""")

MIXED_QUESTIONS = QUESTIONS + [
    "When will the relief convoy depart Rzeszow?",
    "How much fuel is at the forward depot?",
    "How many beds does the field hospital have?",
    "When does the winter training cycle start?",
    "Who leads the surgical team at the field hospital?",
]



def appendix(n: int, revision: int, rng: random.Random) -> str:
    """``n`` distinct store-room log lines, so a build has real embedding work to do (seconds,
    not milliseconds) while the questions keep coming; a new revision changes every line."""
    items = ["blankets", "generators", "water pumps", "radios", "medical kits", "tyres", "rations"]
    rooms = ["north", "south", "east", "west", "cellar", "annex", "loft"]
    lines = [f"Store-room entry {i} (revision {revision}): {rng.randint(2, 900)} boxes of {rng.choice(items)} "
             f"were counted in the {rng.choice(rooms)} room, tag {rng.getrandbits(32):x}." for i in range(n)]
    return "\nStore-room appendix\n\n" + "\n".join(lines) + "\n"


FOOTER_VERSION = re.compile(r"^index (\S+)")


class VersionLedger:
    """Every index version the engine ever served: version -> {(document title, sentence text)}."""

    def __init__(self) -> None:
        self.versions: dict[str, set[tuple[str, str]]] = {}
        self.order: list[str] = []

    def capture(self, engine) -> str:
        snap = engine._current()[0]
        if snap.version not in self.versions:
            titles = [d.title for d in snap.documents]
            doc_of = snap.sentences.doc
            self.versions[snap.version] = {(titles[int(doc_of[i])], text)
                                           for i, text in enumerate(snap.sentences.texts)}
            self.order.append(snap.version)
        return snap.version


def make_engine_class():
    from bot.answering.engine import Engine

    class TrackedEngine(Engine):
        """The real Engine; after every build it records the snapshot it now serves."""

        ledger: VersionLedger

        def build(self, *args, **kwargs):
            report = super().build(*args, **kwargs)
            self.ledger.capture(self)
            return report

    return TrackedEngine


def citations_of(bodies: list[dict]) -> list[tuple[str, str]]:
    """(heading, quoted sentence) of every citation in an answer's messages, in order."""
    out = []
    for body in bodies:
        for embed in body.get("embeds") or []:
            for f in embed.get("fields") or []:
                if re.match(r"\[\d+\] ", f["name"]):
                    out.append((f["name"], unquote(f["value"])))
            title = embed.get("title") or ""
            if re.match(r"\[\d+\] ", title) and (embed.get("description") or "").startswith("> "):
                out.append((title, unquote(embed["description"])))
    return out


def check_answer(bodies: list[dict], ledger: VersionLedger) -> dict:
    """Which version the answer says it used, and which versions hold every sentence it quotes."""
    footer = next(((e.get("footer") or {}).get("text", "") for b in bodies for e in b.get("embeds") or []
                   if (e.get("footer") or {}).get("text")), "")
    m = FOOTER_VERSION.match(footer)
    version = m.group(1) if m else None
    cites = citations_of(bodies)

    def holds(v: str) -> bool:
        pairs = ledger.versions[v]
        return all(any(heading.startswith(f"{heading.split(' ', 1)[0]} {title}") and text == t for title, t in pairs)
                   for heading, text in cites)

    holders = [v for v in ledger.order if holds(v)]
    return {"version": version, "known": version in ledger.versions, "citations": len(cites),
            "consistent": version in holders, "mixed": bool(cites) and not holders}


async def settle(inter, deadline: float) -> None:
    """Wait until the interaction is answered or refused, or the run's deadline passes."""
    try:
        await inter.wait(lambda i: i.answered_at is not None or (i.callback or {}).get("type") == 4,
                         timeout=max(0.1, deadline - time.monotonic()))
    except asyncio.TimeoutError:
        pass


def loadavg() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return float("nan")


async def main(args) -> dict:
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="briefbot-mixed-load-"))
    try:
        docs = work / "documents"
        shutil.copytree(ROOT / "documents", docs)
        for p in docs.rglob("*"):
            if p.is_file():
                p.chmod(0o644)  # the repository's copies are read-only
        (docs / LOGISTICS).write_text(LOGISTICS_OLD + appendix(args.appendix, 1, rng), encoding="utf-8")
        (docs / TRAINING[0]).write_text(TRAINING[1], encoding="utf-8")
        base = Settings(documents_dir=docs, index_dir=work / "index")
        ledger = VersionLedger()
        engine = make_engine_class()(base)
        engine.ledger = ledger
        t0 = time.perf_counter()
        engine.build()
        build_s = time.perf_counter() - t0
        first_version = ledger.order[0]

        fake, bot, runner = await start_bot(engine, base, work, cooldown_seconds=args.cooldown,
                                            guild_rate_per_minute=args.guild_rate)
        await asyncio.to_thread(engine.ask, MIXED_QUESTIONS[0])  # warm, as the bot does after start-up

        n, n_users = args.questions, args.users
        users = [fake.user(f"user{i}") for i in range(n_users)]
        per_user = [n // n_users + (1 if i < n % n_users else 0) for i in range(n_users)]
        asks: list = []  # (FakeInteraction, question) of every /ask sent, retries included
        answered_ok: list = []  # the interaction that answered each question
        refusals = Counter()
        progress = asyncio.Event()
        loads: list[float] = []
        cpu0, started = time.process_time(), time.monotonic()
        deadline = started + args.timeout

        async def user_loop(u: int) -> None:
            await asyncio.sleep(rng.uniform(0, 1.0))  # users do not all start in the same instant
            for k in range(per_user[u]):
                question = MIXED_QUESTIONS[(u + k * n_users) % len(MIXED_QUESTIONS)]
                for _attempt in range(5):
                    inter = await fake.slash(users[u], "ask", {"question": question})
                    asks.append((inter, question))
                    await settle(inter, deadline)
                    if (inter.callback or {}).get("type") != 4:  # deferred: answered, or out of time
                        if inter.answered_at is not None:
                            answered_ok.append(inter)
                            progress.set()
                        break
                    text = ((inter.callback or {}).get("data") or {}).get("content", "")
                    refusals[text.split(".")[0][:60]] += 1
                    await asyncio.sleep(args.cooldown)
                # the next question only after the cooldown, plus some reading time
                await asyncio.sleep(args.cooldown + rng.uniform(0.05, args.think))

        admin = fake.user("admin")
        admin_perms = MEMBER_PERMS | MANAGE_GUILD
        admin_ops: dict[str, dict] = {}

        async def wait_answered(count: int) -> None:
            while len(answered_ok) < count and time.monotonic() < deadline:
                progress.clear()
                try:
                    await asyncio.wait_for(progress.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass

        async def admin_op(name: str, at_fraction: float, **slash_kwargs) -> None:
            await wait_answered(int(n * at_fraction))
            if name == "reindex":
                (docs / LOGISTICS).write_text(LOGISTICS_NEW + appendix(args.appendix, 2, rng), encoding="utf-8")
            inter = await fake.slash(admin, name, permissions=admin_perms, **slash_kwargs)
            admin_ops[name] = {"inter": inter, "answered_before": len(answered_ok)}
            await settle(inter, deadline)
            admin_ops[name]["answered_after"] = len(answered_ok)

        async def sample_load() -> None:
            while True:
                loads.append(loadavg())
                await asyncio.sleep(2.0)

        sampler = asyncio.create_task(sample_load())
        await asyncio.gather(
            *(user_loop(u) for u in range(n_users)),
            admin_op("reindex", args.reindex_at),
            admin_op("upload", args.upload_at,
                     files={"file": (UPLOAD[0], UPLOAD[1] + appendix(args.appendix // 2, 1, rng).encode())}),
        )
        wall = time.monotonic() - started
        cpu = time.process_time() - cpu0
        sampler.cancel()
        loads.append(loadavg())
        await stop_bot(fake, bot, runner)

        # ---- analysis -----------------------------------------------------------------
        every = [i for i, _ in asks] + [op["inter"] for op in admin_ops.values()]
        acks = [i.ack_seconds for i in every if i.ack_seconds is not None]
        latencies = [i.answered_at - i.sent_at for i in answered_ok]
        checks = [check_answer(i.followups, ledger) for i in answered_ok]
        seen = Counter(c["version"] for c in checks)
        build_windows = []
        admin_report = {}
        for name, op in admin_ops.items():
            inter = op["inter"]
            body = next((b for b in inter.followups if b.get("embeds") or b.get("content")), {})
            parts = [body.get("content") or ""] + [e.get("description") or "" for e in body.get("embeds") or []]
            text = "\n".join(parts)
            m = re.search(r"index version `([^`]+)` · took ([\d.]+ \w+)", text)
            done_at = inter.answered_at
            if done_at is not None:
                build_windows.append((inter.sent_at, done_at))
            admin_report[name] = {
                "acknowledged_s": round(inter.ack_seconds, 3) if inter.ack_seconds is not None else None,
                "completed_s": round(done_at - inter.sent_at, 3) if done_at is not None else None,
                "new_version": m.group(1) if m else None,
                "took": m.group(2) if m else None,
                "questions_answered_before_start": op["answered_before"],
                "questions_answered_while_it_ran": op.get("answered_after", 0) - op["answered_before"],
                "reply": text.strip()[:300],
            }
        builds_done = max((end for _start, end in build_windows), default=None)
        after_builds = sum(1 for i in answered_ok if builds_done is not None and i.sent_at > builds_done)
        overlapping = sum(1 for i in answered_ok if any(i.sent_at < end and i.answered_at > start
                                                        for start, end in build_windows))
        # Quotes from the edited logistics briefing tell the two versions apart most clearly.
        logistics = Counter()
        for i, c in zip(answered_ok, checks):
            for _h, text in citations_of(i.followups):
                if "convoy will depart" in text or "Fuel stocks" in text:
                    old = text in LOGISTICS_OLD
                    logistics[("old text" if old else "new text", "first version" if c["version"] == first_version
                               else "later version")] += 1
        asked = {id(i): q for i, q in asks}
        by_question: dict[str, Counter] = {}
        for i, c in zip(answered_ok, checks):
            by_question.setdefault(asked[id(i)], Counter())["cited" if c["citations"] else "not covered"] += 1
        result = {
            "questions": n,
            "users": n_users,
            "cooldown_s": args.cooldown,
            "guild_rate_per_minute": args.guild_rate,
            "interactions": len(every),
            "acknowledged": len(acks),
            "acknowledged_within_3s": sum(1 for a in acks if a <= ACK_LIMIT_S),
            "ack_p50_s": pct(acks, 0.5),
            "ack_max_s": round(max(acks), 3) if acks else None,
            "answered": len(answered_ok),
            "answered_with_citations": sum(1 for c in checks if c["citations"]),
            "not_covered_answers": sum(1 for c in checks if not c["citations"]),
            "rate_limit_refusals": sum(refusals.values()),
            "refusal_messages": dict(refusals),
            "consistent_single_version": sum(1 for c in checks if c["consistent"]),
            "mixed_versions": sum(1 for c in checks if c["mixed"]),
            "unknown_footer_version": sum(1 for c in checks if not c["known"]),
            "answer_latency_p50_s": pct(latencies, 0.5),
            "answer_latency_p95_s": pct(latencies, 0.95),
            "answer_latency_max_s": round(max(latencies), 3) if latencies else None,
            "versions_existed": ledger.order,
            "answers_per_version": {v: seen.get(v, 0) for v in ledger.order},
            "answers_in_flight_during_a_build": overlapping,
            "answers_asked_after_both_builds": after_builds,
            "by_question": {q: dict(k) for q, k in by_question.items()},
            "logistics_quotes": {f"{a} / {b}": k for (a, b), k in sorted(logistics.items())},
            "admin": admin_report,
            "wall_s": round(wall, 2),
            "index_build_s": round(build_s, 2),
            "unknown_requests": len(fake.unknown),
            "protocol_errors": len(fake.errors),
            "machine": {
                "cpu_count": os.cpu_count(),
                "loadavg_1m_min": min(loads),
                "loadavg_1m_max": max(loads),
                "loadavg_1m_mean": round(sum(loads) / len(loads), 2),
                "this_process_cpu_s": round(cpu, 1),
                "this_process_cpu_share_of_one_core": round(cpu / wall, 2) if wall else None,
            },
        }
        result["ok"] = (result["acknowledged_within_3s"] == result["interactions"] and result["answered"] == n
                        and result["consistent_single_version"] == n and not result["mixed_versions"]
                        and not result["unknown_requests"] and not result["protocol_errors"])
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=200, help="questions in all (default 200)")
    parser.add_argument("--users", type=int, default=20, help="simulated users asking them (default 20)")
    parser.add_argument("--cooldown", type=float, default=0.5, help="the bot's per-user cooldown, s (default 0.5)")
    parser.add_argument("--guild-rate", type=int, default=10_000, help="per-guild questions per minute")
    parser.add_argument("--think", type=float, default=2.0,
                        help="most seconds a user reads an answer before the cooldown-paced next question")
    parser.add_argument("--reindex-at", type=float, default=0.2, help="fraction answered before /reindex")
    parser.add_argument("--upload-at", type=float, default=0.3, help="fraction answered before /upload")
    parser.add_argument("--appendix", type=int, default=300,
                        help="generated lines in the edited briefing (the upload gets half), so builds take seconds")
    parser.add_argument("--timeout", type=float, default=270.0, help="seconds before giving up on answers")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    if args.users < 1 or args.questions < 1:
        parser.error("--questions and --users must be at least 1")
    out = asyncio.run(main(args))
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    sys.exit(0 if out["ok"] else 1)
