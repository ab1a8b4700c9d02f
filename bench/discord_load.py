"""Load through the fake Discord: N concurrent /ask interactions against the real bot and engine.

Reports how many were acknowledged within Discord's 3 s, how many were answered, and the
answer latency (interaction sent -> answer follow-up received) p50/p95, as JSON on stdout.

    python bench/discord_load.py            # 100 interactions from 100 users
    python bench/discord_load.py --n 200 --users 20 --cooldown 0
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bot.config import Settings  # noqa: E402
from discord_fake.server import FakeDiscord  # noqa: E402

QUESTIONS = [
    "What did Biden drop his opposition to?",
    "Which missiles can reach far into Russian territory?",
    "Where did North Korean soldiers deploy?",
    "Why did Trump's election add pressure on the administration?",
    "What is the capital of France?",
]


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(q * (len(values) - 1))))
    return round(values[k], 3)


async def start_bot(engine, base: Settings, work: Path, **overrides):
    """A fake Discord and the real bot logged in to it: returns (fake, bot, runner task)."""
    from bot.surfaces.discord import create_bot

    fake = await FakeDiscord().start()
    settings = base.with_(discord_token="test-token", discord_guild_id=int(fake.guild_id),
                          feedback_path=work / "data" / "feedback.jsonl", **overrides)
    bot = create_bot(settings, engine=engine, connector=fake.connector(), guild_ready_timeout=0.05)
    runner = asyncio.create_task(bot.start(settings.discord_token))
    await asyncio.wait_for(bot.wait_until_ready(), 30)
    return fake, bot, runner


async def stop_bot(fake, bot, runner) -> None:
    """Let the threads the answers open finish, then shut the bot and the fake down."""
    seen = -1
    while seen != len(fake.requests):
        seen = len(fake.requests)
        await asyncio.sleep(0.5)
    await bot.close()
    await asyncio.wait_for(runner, 10)
    await fake.close()


async def main(args) -> dict:
    from bot.answering.engine import Engine

    work = Path(tempfile.mkdtemp(prefix="briefbot-discord-load-"))
    try:
        docs = work / "documents"
        docs.mkdir()
        for src in args.documents:
            shutil.copy(src, docs / Path(src).name)
        base = Settings(documents_dir=docs, index_dir=work / "index")
        engine = Engine(base)
        t0 = time.perf_counter()
        engine.build()
        build_s = time.perf_counter() - t0

        fake, bot, runner = await start_bot(engine, base, work, cooldown_seconds=args.cooldown,
                                            guild_rate_per_minute=args.guild_rate)
        await asyncio.to_thread(engine.ask, QUESTIONS[0])  # warm: model and index loaded, as after start-up

        users = [fake.user(f"user{i}") for i in range(args.users)]
        started = time.monotonic()
        inters = await asyncio.gather(*(
            fake.slash(users[i % len(users)], "ask", {"question": QUESTIONS[i % len(QUESTIONS)]})
            for i in range(args.n)
        ))
        deadline = started + args.timeout

        async def settle(inter):
            try:
                await inter.wait(lambda i: i.answered_at is not None or (i.callback and i.callback.get("type") == 4),
                                 timeout=max(0.1, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                pass

        await asyncio.gather(*(settle(i) for i in inters))
        wall = time.monotonic() - started
        acks = [i.ack_seconds for i in inters if i.ack_seconds is not None]
        deferred = [i for i in inters if i.callback and i.callback.get("type") == 5]
        refused = [i for i in inters if i.callback and i.callback.get("type") == 4]
        answered = [i for i in deferred if i.answered_at is not None]
        latencies = [i.answered_at - i.sent_at for i in answered]
        result = {
            "interactions": args.n,
            "users": args.users,
            "acknowledged": len(acks),
            "acknowledged_within_3s": sum(1 for a in acks if a <= 3.0),
            "ack_p50_s": pct(acks, 0.5),
            "ack_max_s": round(max(acks), 3) if acks else None,
            "answered": len(answered),
            "refused_by_rate_limit": len(refused),
            "answer_latency_p50_s": pct(latencies, 0.5),
            "answer_latency_p95_s": pct(latencies, 0.95),
            "answer_latency_max_s": round(max(latencies), 3) if latencies else None,
            "wall_s": round(wall, 3),
            "index_build_s": round(build_s, 2),
            "unknown_requests": len(fake.unknown),
            "protocol_errors": len(fake.errors),
            "cpu_count": os.cpu_count(),
        }
        await stop_bot(fake, bot, runner)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100, help="number of /ask interactions (default 100)")
    parser.add_argument("--users", type=int, default=100, help="distinct users sending them (default 100)")
    parser.add_argument("--cooldown", type=float, default=0.0)
    parser.add_argument("--guild-rate", type=int, default=100_000, help="per-guild questions per minute")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for all answers")
    parser.add_argument("--documents", nargs="+", default=[str(ROOT / "documents" / "briefing-us-missile-policy-2024-11.txt")])
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    result = asyncio.run(main(args))
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
