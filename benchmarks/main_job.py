"""Benchmark: the README's first command, timed: ``main_job`` on the embedded default data, from empty stores.

Runs the Dagster CLI exactly as ``scripts/main.sh`` does, in a fresh work dir (new
Dagster home, MLflow store, data and instruction store), and records the wall time
of the run and of every step (from the run's step events). Usage:
``python -m benchmarks.main_job`` (after ``source scripts/env.sh``; ~15 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import write_result
from oxy_dagster.paths import REPO_ROOT


def step_seconds(log: str) -> dict[str, float]:
    """Seconds per step from the Dagster CLI log (``Finished execution of step "x" in 1.2s`` / ``3m4s``)."""
    out = {}
    for line in log.splitlines():
        m = re.search(r'STEP_SUCCESS - Finished execution of step "(\w+)" in ([0-9hms.]+)\.?$', line)
        if not m:
            continue
        total = 0.0
        for value, unit in re.findall(r"([0-9.]+)(ms|h|m|s)", m.group(2)):
            total += float(value) * {"ms": 1e-3, "s": 1, "m": 60, "h": 3600}[unit]
        out[m.group(1)] = round(total, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="oxy-mainjob-") as tmp:
        home = Path(tmp)
        (home / "dagster_home").mkdir()
        (home / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        env = {**os.environ, "OXY_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home"),
               "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}"}
        env.pop("OXY_DATASET", None)  # the embedded default data
        t0 = time.perf_counter()
        proc = subprocess.run([str(Path(sys.executable).parent / "dg"), "launch", "-m", "jobs.definitions",
                               "--job", "main_job"], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
    log = proc.stdout + proc.stderr
    if proc.returncode != 0 or "RUN_SUCCESS" not in log:
        sys.exit(f"main_job failed:\n{log[-4000:]}")
    steps = step_seconds(log)
    figures = {"main_job_wall_s": round(wall, 1), "steps_s": steps, "steps": len(steps),
               "slow_thinking_s": round(sum(v for k, v in steps.items()
                                            if k in ("stp_instruction_table", "query_rewrites",
                                                     "user_instructions")), 1),
               "pretrain_s": steps.get("pretrained_checkpoint"), "dataset": "synthetic (embedded default)"}
    path = write_result("main_job", figures)
    print(path.read_text())


if __name__ == "__main__":
    main()
