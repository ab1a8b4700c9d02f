"""Run ``briefbot serve`` (the real CLI entry point) in a subprocess against the fake Discord.

Test scaffolding only: the one thing that can't exist here is Discord's network, so the
client's connector is pointed at the fake (``FAKE_PORT``, CA in ``FAKE_CA``). ``FAKE_ASK_DELAY``
holds each answer for that many seconds, so a test can stop the bot with a question in flight.
"""

from __future__ import annotations

import os
import ssl
import sys
import time

import aiohttp

from bot.answering import collections as collections_mod
from bot.surfaces import cli
from bot.surfaces.discord import serve as serve_mod

from .server import FakeResolver


def main() -> int:
    port, ca = int(os.environ["FAKE_PORT"]), os.environ["FAKE_CA"]
    delay = float(os.environ.get("FAKE_ASK_DELAY", "0") or 0)
    if delay:
        original = collections_mod.Collections.ask

        def slow_ask(self, *args, **kwargs):
            time.sleep(delay)
            return original(self, *args, **kwargs)

        collections_mod.Collections.ask = slow_ask
    real_run = serve_mod.run

    async def run(settings, engine=None, **kwargs):  # the connector must be made inside the event loop
        ctx = ssl.create_default_context(cadata=open(ca, encoding="utf-8").read())
        return await real_run(settings, engine, connector=aiohttp.TCPConnector(resolver=FakeResolver(port), ssl=ctx),
                              guild_ready_timeout=0.05, **kwargs)

    serve_mod.run = run
    return cli.main(["serve", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
