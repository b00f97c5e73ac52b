"""Near-line instructions: 5-minute windows, committed in batches with their cursor, exactly once across a crash."""

import json
import subprocess
import sys

import dagster as dg
import pytest

from assets.reasoning.nearline import nearline_instruction_sensor
from assets.resources import EventSourceResource, InstructionStoreResource
from oxy_dagster.reasoning.nearline import FileEventLog, closed_prefix, is_high_value, make_event_source
from oxy_dagster.reasoning.store import make_store

W = 300
T0 = 1_764_000_000 // W * W


def _events():
    return [
        {"user_id": "a", "item_id": "i1", "behavior": "cart", "ts": T0 + 10},
        {"user_id": "b", "item_id": "i2", "behavior": "click", "scenario": "search", "query": "rain boo",
         "ts": T0 + 20},
        {"user_id": "c", "item_id": "i3", "behavior": "click", "ts": T0 + 30},  # low value: no instruction
        {"user_id": "a", "item_id": "i4", "behavior": "purchase", "ts": T0 + W + 5},
        {"user_id": "b", "item_id": "i6", "behavior": "cart", "ts": T0 + W + 8},
        {"user_id": "b", "item_id": "i5", "behavior": "cart", "ts": T0 + 2 * W + 50},  # window still open at NOW
    ]


NOW = T0 + 2 * W + 60


def test_windows_close_in_order_and_only_high_value_events_count(tmp_path):
    log = FileEventLog(tmp_path / "e.jsonl")
    log.append(_events())
    entries = log.read_from(log.start)
    ready = closed_prefix(entries, NOW, W)
    assert len(ready) == 5 and [is_high_value(e) for _, e in ready] == [True, True, False, True, True]
    with open(log.path, "a") as f:
        f.write('{"user_id": "half')  # a line still being written is never read
    assert len(log.read_from(log.start)) == 6


# The fault, injected from the test: the process dies (exit 137, like a kill -9) when it commits its second batch,
# i.e. after the first batch (instructions + cursor) was committed and with the second one in flight.
CRASH_ON_SECOND_COMMIT = """
import os, sys
from oxy_dagster.reasoning import nearline, store

class CrashOnSecondCommit:
    def __init__(self, inner):
        self.inner, self.commits = inner, 0
    def __getattr__(self, name):
        return getattr(self.inner, name)
    def put_many(self, *args, **kwargs):
        self.commits += 1
        if self.commits == 2:
            os._exit(137)
        return self.inner.put_many(*args, **kwargs)

real = store.make_store
store.make_store = lambda url: CrashOnSecondCommit(real(url))
nearline.main(sys.argv[1:])
"""


def _run(events, store, llm_url, cache, crash=False):
    args = ["--events", events, "--store", store, "--llm-base-url", llm_url, "--llm-cache", cache, "--now", str(NOW),
            "--window-s", str(W), "--batch-windows", "1"]
    cmd = [sys.executable, "-c", CRASH_ON_SECOND_COMMIT, *args] if crash else \
        [sys.executable, "-m", "oxy_dagster.reasoning.nearline", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["embedded", "redis"])
def test_a_crash_between_batches_loses_and_duplicates_nothing(kind, tmp_path, local_llm, request):
    if kind == "embedded":
        events, store_url = str(tmp_path / "events.jsonl"), f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("clean_redis")
        events, store_url = url, url
    source = make_event_source(events)
    source.append(_events())
    cache = str(tmp_path / "llm.sqlite")
    crashed = _run(events, store_url, local_llm.base_url, cache, crash=True)
    assert crashed.returncode == 137, crashed.stderr[-3000:] + crashed.stdout[-2000:]
    store = make_store(store_url)
    first_window_end = source.read_from(source.start)[2][0]  # the cursor after the first window's three events
    assert store.get_cursor("nearline") == first_window_end  # batch 1 committed with its cursor, batch 2 not
    first = {(w["user_id"], w["window"]): w["instruction"] for w in store.windows()}
    assert set(first) <= {("a", T0), ("b", T0)}
    done = _run(events, store_url, local_llm.base_url, cache)
    assert done.returncode == 0, done.stderr[-2000:]
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    assert stats["events"] == 2 and stats["windows"] == 2  # only the batch in flight was redone
    after = store.windows()
    keys = [(w["user_id"], w["window"]) for w in after]
    assert len(keys) == len(set(keys)) and set(first) <= set(keys)
    assert set(keys) - set(first) <= {("a", T0 + W), ("b", T0 + W)} and len(set(keys) - set(first)) == stats["written"]
    assert all({(w["user_id"], w["window"]): w["instruction"] for w in after}[k] == v for k, v in first.items())
    assert store.get_cursor("nearline") == stats["cursor"]
    again = json.loads(_run(events, store_url, local_llm.base_url, cache).stdout.strip().splitlines()[-1])
    assert again["events"] == 0 and len(store.windows()) == len(after)  # nothing new: nothing done


def test_sensor_requests_a_run_only_for_closed_windows(tmp_path):
    source = EventSourceResource(url=str(tmp_path / "ev.jsonl"), window_s=W)
    store = InstructionStoreResource(url=f"sqlite:///{tmp_path / 's.db'}")
    ctx = dg.build_sensor_context(resources={"event_source": source, "instruction_store": store})
    assert isinstance(nearline_instruction_sensor(ctx), dg.SkipReason)
    source.open().append(_events()[:2])  # T0 windows closed long ago relative to the wall clock
    req = nearline_instruction_sensor(dg.build_sensor_context(resources={"event_source": source,
                                                                          "instruction_store": store}))
    assert isinstance(req, dg.RunRequest) and req.run_key.startswith("nearline-0-") and req.tags["ready_events"] == "2"


def test_batches_cut_only_between_windows():
    from oxy_dagster.reasoning.nearline import _batches

    entries = [(str(i), {"ts": t}) for i, t in enumerate([0, 10, 300, 310, 320, 600, 900, 901])]
    sizes = lambda k: [len(b) for b in _batches(entries, 300, k)]  # noqa: E731
    assert sizes(1) == [2, 3, 1, 2] and sizes(2) == [5, 3] and sizes(99) == [8] and sizes(3) == [6, 2]


@pytest.mark.slow
def test_redis_killed_mid_pass_loses_and_duplicates_no_instruction(local_llm, tmp_path, require_installed):
    """kill -9 of a Redis with append-only persistence in the middle of a near-line pass; restart; finish."""
    import shutil

    from oxy_dagster.infra.drills import redis_kill_drill

    require_installed(shutil.which("redis-server") is not None, "redis-server", "redis-server", "OXY_REQUIRE_REDIS")
    out = redis_kill_drill(local_llm.base_url, tmp_path)
    assert out["first_pass_rc"] != 0  # the pass really died with its store
    assert 0 < out["seen_before_kill"] <= out["survived_restart"] < out["expected"]  # acknowledged writes survived
    assert out["written_after_restart"] == out["final"] - out["survived_restart"]  # only the rest was redone
    assert out["lost"] == 0 and out["duplicated"] == 0
    assert out["final"] + out["not_generated"] == out["expected"] and out["not_generated"] <= out["expected"] // 3
