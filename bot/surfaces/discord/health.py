"""``briefbot health``: read the heartbeat a running ``serve`` writes, without importing discord.py.

Healthy = the file is fresh (three heartbeats at most) and says the gateway is connected. The
check runs in a second process (Docker's HEALTHCHECK), so a file is the simplest honest signal.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

MAX_AGE = 95.0  # three 30 s heartbeats, plus slack


def check(settings, now: float | None = None) -> tuple[bool, str]:
    path = Path(settings.feedback_path).with_name("health.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return False, f"unhealthy: no heartbeat at {path} (is `briefbot serve` running with the same settings?)"
    except (OSError, ValueError) as exc:
        return False, f"unhealthy: heartbeat {path} unreadable ({type(exc).__name__})"
    age = (time.time() if now is None else now) - float(data.get("at", 0))
    if age > MAX_AGE:
        return False, f"unhealthy: last heartbeat {age:.0f} s ago (the bot is stuck or stopped)"
    if not data.get("connected"):
        return False, "unhealthy: not connected to Discord"
    return True, f"healthy: connected, {int(data.get('in_flight', 0))} question(s) in flight, heartbeat {age:.0f} s ago"
