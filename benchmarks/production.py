"""Benchmark: the scale-out path on this machine, with real components (issue: production path).

- ``spark_local_wall_s`` / ``spark_cluster_wall_s``: Beauty's data stage (raw -> validated -> splits -> Swing ->
  samples -> stats), each in a fresh process, on ``local[2]`` and on a standalone cluster of a master and two
  one-core workers on 127.0.0.1 (the same two cores); the tables are compared row for row.
- ``redis_kill_lost`` / ``redis_kill_duplicated``: the near-line drill (``oxy_dagster/infra/drills.py``) against
  the embedded LLM: Redis with append-only persistence killed (-9) mid-pass, restarted, the pass finished.
- ``ui_checks_passed``: the browser checks of the last UI test run (``tests/test_end_to_end.py``
  writes ``<artifacts>/ui/checks.json``), counted here with their names.
- ``ddp2_vs_1_final_loss_delta``: the ``small`` generator pre-trained on the default synthetic shop (data
  stage, V1 codebook) twice with the same schedule: in one process, and over 2 processes (torchrun, gloo,
  ZeRO-2; each rank takes half of every global batch), as ``pretrained_checkpoint`` starts them. The figure is
  the 2-process final loss (mean of the last 20 steps' global-batch loss) minus the 1-process one; the
  relative delta, the next-token-only delta and both curves (PNG) come with it.
- A part skipped with ``--skip-*`` keeps the figures of the previous result file, with that file's commit.

Usage: ``python -m benchmarks.production [--skip-spark] [--skip-redis] [--skip-ddp]`` (~20 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import RESULTS as RESULTS_DIR
from benchmarks.common import write_result
from oxy_dagster.paths import REPO_ROOT

DATA_STAGE = """
import json, sys, time
from oxy_dagster.data.pipeline import run_all
from oxy_dagster.data.sources import DatasetConfig
from oxy_dagster.spark import SparkConfig, get_spark
t0 = time.perf_counter()
spark = get_spark(SparkConfig(master=sys.argv[1], shuffle_partitions=8))
t1 = time.perf_counter()
out = run_all(spark, DatasetConfig(kind="beauty"), sys.argv[2])
print(json.dumps({"startup_s": t1 - t0, "wall_s": time.perf_counter() - t1, "pairs": out["swing"]["pairs"],
                  "samples": out["samples"]["samples"]}))
"""


def data_stage(master: str, root: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", DATA_STAGE, master, str(root)], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=3600)
    if proc.returncode != 0:
        sys.exit(f"data stage on {master} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def same_tables(a: Path, b: Path) -> dict[str, bool]:
    import pandas as pd

    def canonical(p: Path) -> pd.DataFrame:
        df = pd.read_parquet(p)
        df = df.astype({c: str for c in df.columns if df[c].dtype == object})
        return df.sort_values(list(df.columns)).reset_index(drop=True)

    out = {}
    for t in ("validated/items", "validated/users", "validated/events", "splits", "swing", "samples"):
        try:
            pd.testing.assert_frame_equal(canonical(a / t), canonical(b / t), check_exact=False, rtol=1e-9)
            out[t] = True
        except AssertionError:
            out[t] = False
    return out


def spark_figures() -> dict:
    from oxy_dagster.infra.spark_cluster import StandaloneSparkCluster

    with tempfile.TemporaryDirectory(prefix="oxy-prod-") as tmp:
        tmp = Path(tmp)
        local = data_stage("local[2]", tmp / "local")
        t0 = time.perf_counter()
        with StandaloneSparkCluster(log_dir=tmp / "cluster-logs") as cluster:
            cluster_up = time.perf_counter() - t0
            remote = data_stage(cluster.master_url, tmp / "cluster")
        equal = same_tables(tmp / "local", tmp / "cluster")
    return {"spark_local_wall_s": round(local["wall_s"], 1), "spark_cluster_wall_s": round(remote["wall_s"], 1),
            "spark_cluster_vs_local": round(remote["wall_s"] / local["wall_s"], 2),
            "spark_local_startup_s": round(local["startup_s"], 1),
            "spark_cluster_startup_s": round(remote["startup_s"], 1), "spark_cluster_up_s": round(cluster_up, 1),
            "spark_tables_equal": equal, "spark_all_tables_equal": all(equal.values())}


def redis_figures() -> dict:
    from oxy_dagster.infra.drills import redis_kill_drill
    from oxy_dagster.reasoning.server import LocalLLMServer

    with tempfile.TemporaryDirectory(prefix="oxy-drill-") as tmp, LocalLLMServer(n_threads=2) as llm:
        out = redis_kill_drill(llm.base_url, tmp)
    return {"redis_kill_lost": out["lost"], "redis_kill_duplicated": out["duplicated"], "redis_kill_drill": out}


def ddp_figures(steps: int = 200, batch_size: int = 128, n_users: int = 2000) -> tuple[dict, Path]:
    import numpy as np

    from oxy_dagster.data.pipeline import run_all
    from oxy_dagster.data.sources import DatasetConfig
    from oxy_dagster.data.synthetic import SyntheticConfig
    from oxy_dagster.io import save_figure
    from oxy_dagster.model.config import TrainConfig
    from oxy_dagster.model.pipeline import build_pretrained
    from oxy_dagster.paths import DataPaths
    from oxy_dagster.sid.build import build_codebook, build_item_embeddings, build_text_embeddings
    from oxy_dagster.spark import SparkConfig, get_spark

    root = Path(tempfile.mkdtemp(prefix="oxy-ddp-"))
    run_all(get_spark(SparkConfig(master="local[2]", shuffle_partitions=4)),
            DatasetConfig(kind="synthetic", synthetic=SyntheticConfig(n_users=n_users)), root)
    paths = DataPaths(root)
    build_text_embeddings(paths)
    build_item_embeddings(paths, "V1")
    build_codebook(paths, "V1")
    cfg = TrainConfig(steps=steps, batch_size=batch_size, warmup=20, zero_stage=2, log_every=1)
    curves, walls = {}, {}
    for n in (1, 2):
        t0 = time.perf_counter()
        build_pretrained(paths, "V1", "small", TrainConfig(**{**cfg.__dict__, "processes": n}),
                         out_dir=root / f"p{n}", echo=lambda line: None)
        walls[n] = time.perf_counter() - t0
        curves[n] = json.loads((root / f"p{n}" / "history.json").read_text())

    def final(n: int, key: str) -> float:
        return float(np.mean([h[key] for h in curves[n][-20:]]))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for n, style in ((1, "-"), (2, "--")):
        for key in ("loss", "ntp"):
            ax.plot([h["step"] for h in curves[n]], [h[key] for h in curves[n]], style, label=f"{key}, {n} process(es)")
    ax.set(xlabel="step", ylabel="global-batch loss", title="small generator: 2 processes (gloo, ZeRO-2) vs 1")
    ax.legend()
    png = save_figure(fig, RESULTS_DIR / "production_ddp.png")
    delta = final(2, "loss") - final(1, "loss")
    step_rel = [abs(a["loss"] - b["loss"]) / b["loss"] for a, b in zip(curves[2], curves[1])]
    return {"ddp2_vs_1_final_loss_delta": round(delta, 4),
            "ddp2_vs_1_final_loss_rel_delta": round(delta / final(1, "loss"), 4),
            "ddp2_vs_1_final_ntp_delta": round(final(2, "ntp") - final(1, "ntp"), 4),
            "ddp2_vs_1_mean_step_rel_diff": round(float(np.mean(step_rel)), 4),
            "ddp_final_loss_1proc": round(final(1, "loss"), 4), "ddp_final_loss_2proc": round(final(2, "loss"), 4),
            "ddp_wall_s_1proc": round(walls[1], 1), "ddp_wall_s_2proc": round(walls[2], 1),
            "ddp_setup": {"model": "small", "steps": steps, "global_batch": batch_size, "zero_stage": 2,
                          "dataset": f"synthetic, {n_users} users", "final": "mean of the last 20 steps"}}, png


def carried(previous: dict, prefix: str) -> dict:
    """The figures of a skipped part, from the previous result file, marked with the commit that measured them."""
    kept = {k: v for k, v in previous.items() if k.startswith(prefix)}
    if kept:
        key = f"{prefix.rstrip('_')}_figures_commit"
        kept[key] = previous.get(key, previous.get("commit"))
    return kept


def ui_figures(path: Path) -> dict:
    checks = json.loads(path.read_text())
    return {"ui_checks_passed": sum(c["passed"] for c in checks), "ui_checks_total": len(checks),
            "ui_checks": {c["name"]: c["passed"] for c in checks},
            "ui_checks_run_at": time.strftime("%Y-%m-%d %H:%M", time.gmtime(path.stat().st_mtime))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--skip-spark", action="store_true")
    ap.add_argument("--skip-redis", action="store_true")
    ap.add_argument("--ui-checks", default=str(Path(os.environ.get("OXY_TEST_ARTIFACTS", REPO_ROOT / ".oxy" /
                                                                   "test-artifacts")) / "ui" / "checks.json"))
    ap.add_argument("--skip-ddp", action="store_true")
    args = ap.parse_args()
    previous = json.loads((RESULTS_DIR / "production.json").read_text()) if (RESULTS_DIR / "production.json").exists() \
        else {}
    figures, artifacts = {}, []
    if args.skip_ddp:
        figures.update(carried(previous, "ddp"))
    else:
        ddp, png = ddp_figures()
        figures.update(ddp)
        artifacts.append(png)
        print({k: v for k, v in ddp.items() if k.startswith("ddp")}, flush=True)
    if args.skip_spark:
        figures.update(carried(previous, "spark"))
    else:
        figures.update(spark_figures())
        print({k: v for k, v in figures.items() if k.startswith("spark")}, flush=True)
    if args.skip_redis:
        figures.update(carried(previous, "redis"))
    else:
        figures.update(redis_figures())
    ui = Path(args.ui_checks)  # the last UI test run's checks; without one, the previous file's figures
    figures.update(ui_figures(ui) if ui.exists() else carried(previous, "ui_"))
    print(write_result("production", figures, artifacts=artifacts).read_text())


if __name__ == "__main__":
    main()
