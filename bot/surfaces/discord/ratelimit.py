"""Per-user cooldown, per-guild rate and fairness, so one person cannot starve the others.

Rules, checked in this order when a question arrives:
1. a user has at most one question in flight;
2. a user waits ``cooldown`` seconds between accepted questions;
3. a guild accepts at most ``per_minute`` questions in any 60 s window;
4. no single user may take more than half of a guild's window, so a flood from one user
   (even with the cooldown set to 0) leaves room for everybody else.
Pure and clock-injectable so it is tested without sleeping.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Callable

WINDOW = 60.0
PRUNE_EVERY = 256  # acquisitions between clean-ups (amortized O(1) per question)


@dataclass(frozen=True)
class Decision:
    ok: bool
    retry_after: float = 0.0
    reason: str = ""  # "", "busy", "cooldown", "guild", "share"

    def message(self) -> str:
        wait = max(1, math.ceil(self.retry_after))
        if self.reason == "busy":
            return "I'm still working on your previous question; I'll take the next one when it's answered."
        if self.reason == "cooldown":
            return f"Easy there! You can ask again in {wait} s."
        if self.reason == "guild":
            return f"This server has asked a lot of questions in the last minute. Please try again in {wait} s."
        if self.reason == "share":
            return f"You've asked a lot of questions this minute; let others have a turn. Try again in {wait} s."
        return ""


class RateLimiter:
    def __init__(self, cooldown: float, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.cooldown = max(0.0, float(cooldown))
        self.per_minute = max(1, int(per_minute))
        self.clock = clock
        self._last: dict[int, float] = {}
        self._busy: set[int] = set()
        self._guild: dict[int, deque[tuple[float, int]]] = defaultdict(deque)
        self._calls = 0

    def _prune(self, now: float) -> None:
        """Forget what can no longer refuse anyone: cooldowns that ran out, empty guild windows.
        Keeps the maps as large as the last minute's askers, not every user ever seen."""
        self._last = {u: t for u, t in self._last.items() if now - t < self.cooldown or u in self._busy}
        for gid in [g for g, w in self._guild.items() if not w or now - w[-1][0] >= WINDOW]:
            del self._guild[gid]

    def acquire(self, user_id: int, guild_id: int | None) -> Decision:
        """Accept (and count) a question, or say why not and for how long."""
        now = self.clock()
        self._calls += 1
        if self._calls % PRUNE_EVERY == 0:
            self._prune(now)
        if user_id in self._busy:
            return Decision(False, 0.0, "busy")
        last = self._last.get(user_id)
        if last is not None and now - last < self.cooldown:
            return Decision(False, self.cooldown - (now - last), "cooldown")
        if guild_id is not None:
            window = self._guild[guild_id]
            while window and now - window[0][0] >= WINDOW:
                window.popleft()
            if len(window) >= self.per_minute:
                return Decision(False, WINDOW - (now - window[0][0]), "guild")
            mine = [t for t, u in window if u == user_id]
            share = max(1, self.per_minute // 2)
            if len(mine) >= share and self.per_minute > 1:
                return Decision(False, WINDOW - (now - mine[0]), "share")
            window.append((now, user_id))
        self._last[user_id] = now
        self._busy.add(user_id)
        return Decision(True)

    def release(self, user_id: int) -> None:
        """The user's question is answered (or failed); they may queue the next one."""
        self._busy.discard(user_id)
