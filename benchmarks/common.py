"""Shared benchmark plumbing: machine description, commit, peak-RSS sampler, result JSON + MLflow."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import threading
import time
from pathlib import Path

import psutil

from oxy_dagster.io import write_json
from oxy_dagster.paths import REPO_ROOT, default_mlflow_uri

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    cpu = platform.processor() or "cpu"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = psutil.virtual_memory().total / 2**30
    return (f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {accelerator()}, "
            f"{platform.system()} {platform.machine()}")


def accelerator() -> str:
    """The accelerator this process can use, as torch sees it (``no GPU`` when torch finds none)."""
    try:
        import torch
    except ImportError:
        return "no GPU (torch not installed)"
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return f"{len(names)} x {names[0]}" if len(set(names)) == 1 else ", ".join(names)
    return "no GPU"


def commit() -> str:
    """The checkout's short commit; ``OXY_COMMIT`` where the tree travelled without its git metadata (a copy of
    the working tree on a lent GPU machine)."""
    if os.environ.get("OXY_COMMIT"):
        return os.environ["OXY_COMMIT"]
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class PeakRSS:
    """Samples the summed RSS of this process and all its children (e.g. the Spark JVM)."""

    def __init__(self, interval: float = 0.2):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    def _sample(self):
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(self.interval)

    def __enter__(self):
        self._t = threading.Thread(target=self._sample, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()

    @property
    def peak_mb(self) -> float:
        return round(self.peak / 2**20, 1)


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}_"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = float(v)
    return out


def write_result(name: str, figures: dict, params: dict | None = None, artifacts=()) -> Path:
    """Write benchmarks/results/<name>.json and log the same figures to MLflow (where MLflow is installed: a
    lent GPU machine has no MLflow; its results are logged here afterwards with ``--log``)."""
    record = {"machine": machine(), "date": dt.date.today().isoformat(), "commit": commit(), **figures}
    path = write_json(RESULTS / f"{name}.json", record)
    try:
        log_result(path, params, artifacts)
    except ImportError as e:
        print(f"{path.name} written, not logged to MLflow ({e}): `python -m benchmarks.common --log {name}` where "
              "MLflow is installed", flush=True)
    return path


def log_result(path: Path, params: dict | None = None, artifacts=()) -> None:
    """Log a results JSON (its numeric figures as metrics, the file as an artifact) to the MLflow store."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    record = json.loads(Path(path).read_text())
    figures = {k: v for k, v in record.items() if k not in ("machine", "date", "commit")}
    mlflow.set_tracking_uri(default_mlflow_uri())
    mlflow.set_experiment("oxyrec-benchmarks")
    with mlflow.start_run(run_name=Path(path).stem, tags={"commit": record["commit"], "machine": record["machine"]}):
        if params:
            mlflow.log_params(params)
        mlflow.log_metrics({k.replace("@", "_at_"): v for k, v in _flat(figures).items()})
        for f in (path, *artifacts):
            mlflow.log_artifact(str(f))


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="log results written where MLflow was not installed")
    ap.add_argument("--log", required=True, help="results name: benchmarks/results/<name>.json")
    log_result(RESULTS / f"{ap.parse_args().log}.json")
