"""Fault drills an operator can run against the near-line path: real servers, real processes, counted outcomes.

``redis_kill_drill``: a near-line pass writes instructions to a Redis store with append-only persistence; the
Redis server is killed (-9) after the pass has committed its first batch, the pass dies with it, Redis restarts
from its append-only file, and a second pass finishes the work. Every (user, window) instruction is counted:
none may be lost, none written twice.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from ..reasoning.nearline import make_event_source
from ..reasoning.store import make_store
from .redis_server import RedisServer

WINDOW_S = 300
T0 = 1_764_000_000 // WINDOW_S * WINDOW_S


def drill_events(users: int, windows: int) -> list[dict]:
    """One high-value event per (user, window), in time order."""
    return [{"user_id": f"u{u}", "item_id": f"i{(u * 7 + w) % 50}", "behavior": ("cart", "purchase")[(u + w) % 2],
             "ts": T0 + w * WINDOW_S + 10 + u} for w in range(windows) for u in range(users)]


def _pass(url: str, llm_base_url: str, cache: Path, now: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "oxy_dagster.reasoning.nearline", "--events", url, "--store", url,
                             "--llm-base-url", llm_base_url, "--llm-cache", str(cache), "--now", str(now),
                             "--window-s", str(WINDOW_S), "--batch-windows", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _keys(url: str) -> set[tuple[str, int]] | None:
    try:
        return {(w["user_id"], w["window"]) for w in make_store(url).windows()}
    except Exception:  # noqa: BLE001 - the server is starting or gone
        return None


def redis_kill_drill(llm_base_url: str, work: str | Path, users: int = 3, windows: int = 6,
                     timeout_s: float = 600.0) -> dict:
    """Counts: ``lost`` = instructions seen committed before the kill that are gone after the restart, or gone
    at the end; ``duplicated`` = windows written more than once over the two passes (the second pass redoing a
    committed window, or two rows for one window).
    ``not_generated`` = windows the LLM gave no usable answer for (counted by the passes, not a store loss)."""
    work = Path(work)
    expected = users * windows
    now = T0 + (windows + 1) * WINDOW_S
    with RedisServer(work / "redis") as server:
        make_event_source(server.url).append(drill_events(users, windows))
        first = _pass(server.url, llm_base_url, work / "llm.sqlite", now)
        deadline, seen = time.monotonic() + timeout_s, set()
        while len(seen) < users and first.poll() is None and time.monotonic() < deadline:
            seen |= _keys(server.url) or set()
            time.sleep(0.05)
        server.kill9()  # mid-pass: at least one batch committed, more to come
        first_rc = first.wait(timeout=120)
        server.start()  # same port and directory: replays the append-only file
        survived = _keys(server.url) or set()
        second = _pass(server.url, llm_base_url, work / "llm.sqlite", now)
        out, err = second.communicate(timeout=timeout_s)
        if second.returncode != 0:
            raise RuntimeError(f"the second near-line pass failed: {err[-2000:]}")
        stats = json.loads(out.strip().splitlines()[-1])
        windows_rows = make_store(server.url).windows()
    final = {(w["user_id"], w["window"]) for w in windows_rows}
    new_after_restart = final - survived
    return {"expected": expected, "first_pass_rc": first_rc, "seen_before_kill": len(seen),
            "survived_restart": len(survived), "written_after_restart": stats["written"], "final": len(final),
            "lost": len(seen - survived) + len(survived - final),
            "duplicated": (len(windows_rows) - len(final)) + max(0, stats["written"] - len(new_after_restart)),
            "not_generated": expected - len(final)}
