"""Benchmark: the whole test suite (what CI runs after the install), timed on this machine.

Runs ``pytest`` over ``tests/`` with a JUnit report and records the count of tests by
outcome, the wall time and the ten slowest tests. Usage: ``python -m benchmarks.suite``
(after ``source scripts/env.sh``; extra arguments go to pytest).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from benchmarks.common import write_result
from oxy_dagster.paths import REPO_ROOT


def summarize(junit_xml: Path) -> dict:
    cases = ET.parse(junit_xml).getroot().iter("testcase")
    rows = []
    for c in cases:
        outcome = "failed" if c.find("failure") is not None or c.find("error") is not None else \
            "skipped" if c.find("skipped") is not None else "passed"
        rows.append((f"{c.get('classname')}::{c.get('name')}", float(c.get("time", 0)), outcome))
    counts = {k: sum(r[2] == k for r in rows) for k in ("passed", "failed", "skipped")}
    slowest = {name: round(t, 1) for name, t, _ in sorted(rows, key=lambda r: -r[1])[:10]}
    return {"tests": len(rows), **counts, "slowest_s": slowest}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", f"--junitxml={report}", *sys.argv[1:]],
                              cwd=REPO_ROOT)
        wall = time.perf_counter() - t0
        figures = {"suite_wall_s": round(wall, 1), **summarize(report), "exit_code": proc.returncode}
    path = write_result("suite", figures)
    print(path.read_text())
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
