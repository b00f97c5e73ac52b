"""The data stage on a standalone Spark cluster (a master and two workers on 127.0.0.1) writes the same tables,
row for row, as local mode; the cluster is chosen by configuration (``OXY_SPARK_MASTER``) only."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
TABLES = ("validated/items", "validated/users", "validated/events", "validated/impressions", "splits", "swing",
          "samples")
# data_job through the code location, in its own process: the Spark master comes from the environment.
RUN_DATA_JOB = "from jobs.definitions import defs; assert defs.get_job_def('data_job').execute_in_process().success"


def canonical(path: Path) -> pd.DataFrame:
    """A table as a frame in a canonical row order (list columns compared by their text)."""
    df = pd.read_parquet(path)
    df = df.astype({c: str for c in df.columns if df[c].dtype == object})
    return df.sort_values(list(df.columns)).reset_index(drop=True)


@pytest.mark.slow
def test_data_stage_on_a_standalone_cluster_matches_local_mode(spark, tmp_path):
    from oxy_dagster.data.pipeline import run_all
    from oxy_dagster.data.sources import DatasetConfig
    from oxy_dagster.data.synthetic import SyntheticConfig
    from oxy_dagster.infra.spark_cluster import StandaloneSparkCluster

    run_all(spark, DatasetConfig(kind="synthetic", synthetic=SyntheticConfig(n_users=120, seed=7)), tmp_path / "local")
    home = tmp_path / "cluster-home"
    with StandaloneSparkCluster(log_dir=tmp_path / "cluster-logs") as cluster:
        assert cluster.alive_workers() == 2
        env = {**os.environ, "OXY_HOME": str(home), "OXY_SPARK_MASTER": cluster.master_url, "OXY_DATASET": "synthetic",
               "OXY_SYNTHETIC_USERS": "120", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
               "DAGSTER_HOME": str(tmp_path)}
        proc = subprocess.run([sys.executable, "-c", RUN_DATA_JOB], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        finished = {a["name"]: a["state"] for a in cluster.status()["completedapps"]}
        assert finished == {"oxyrec": "FINISHED"}, finished  # the job's session ran on the cluster, not locally
    for table in TABLES:
        local, on_cluster = canonical(tmp_path / "local" / table), canonical(home / "data/synthetic" / table)
        assert len(local) > 0, table
        pd.testing.assert_frame_equal(local, on_cluster, check_exact=False, rtol=1e-9, obj=table)


def test_the_master_ports_are_read_from_its_log_not_assumed(tmp_path):
    """Spark moves to the next port when the one asked for is taken: the cluster must use the port it bound."""
    import time

    from oxy_dagster.infra.process import ManagedProcess
    from oxy_dagster.infra.spark_cluster import StandaloneSparkCluster

    log = tmp_path / "master.log"
    log.write_text("INFO Utils: Successfully started service 'sparkMaster' on port 41001.\n"
                   "WARN Utils: Service 'MasterUI' could not bind on port 41002. Attempting port 41003.\n"
                   "INFO Utils: Successfully started service 'MasterUI' on port 41003.\n")
    master = ManagedProcess(["sleep", "30"], log).start()  # appends its (empty) output to the log written above
    try:
        ports = StandaloneSparkCluster(log_dir=tmp_path)._bound_ports(master, time.monotonic() + 5)
    finally:
        master.stop()
    assert ports == {"sparkMaster": 41001, "MasterUI": 41003}
    died = ManagedProcess(["true"], tmp_path / "true.log").start()
    died.proc.wait()
    with pytest.raises(RuntimeError, match="did not start"):
        StandaloneSparkCluster(log_dir=tmp_path)._bound_ports(died, time.monotonic() + 5)
