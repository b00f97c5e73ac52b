"""The production control plane on real servers: Dagster's run, event-log and schedule storage and the MLflow
tracking server on PostgreSQL; runs queued and launched by the Dagster daemon (``deploy/dagster.yaml``).

Faults: a run worker terminated mid-asset is retried by the run-retry policy and finishes, and the MLflow run of
the killed attempt ends FAILED; PostgreSQL restarted during a run leaves every run record readable.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def postgres(require_installed):
    from oxy_dagster.infra.postgres import LocalPostgres, postgres_bin

    require_installed(postgres_bin() is not None, "PostgreSQL", "postgresql")
    # its own folder under /tmp: the server's user cannot enter pytest's private (0700) temp folders
    with LocalPostgres(("dagster", "mlflow")) as pg:
        yield pg


@pytest.fixture(scope="module")
def plane(postgres, tmp_path_factory):
    """The MLflow server and the Dagster daemon over ``postgres``; yields (env, instance, mlflow_url)."""
    from dagster import DagsterInstance

    from oxy_dagster.infra.process import ManagedProcess, mlflow_server, venv_bin

    tmp = tmp_path_factory.mktemp("plane")
    (tmp / "dagster_home").mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", tmp / "dagster_home" / "dagster.yaml")
    with mlflow_server(postgres.url("mlflow"), tmp / "artifacts", tmp / "mlflow.log") as mlflow:
        env = {**os.environ, "DAGSTER_HOME": str(tmp / "dagster_home"),
               "OXY_DAGSTER_PG_URL": postgres.url("dagster", "postgresql+psycopg2"),
               "OXY_HOME": str(tmp / "home"), "MLFLOW_TRACKING_URI": mlflow.url, "OXY_DATASET": "synthetic",
               "OXY_SYNTHETIC_USERS": "120"}
        old = {k: os.environ.get(k) for k in ("DAGSTER_HOME", "OXY_DAGSTER_PG_URL")}
        os.environ.update({k: env[k] for k in old})
        with ManagedProcess([venv_bin("dagster-daemon"), "run", "-w", "workspace.yaml"], tmp / "daemon.log", env=env,
                            cwd=ROOT):
            with DagsterInstance.get() as instance:
                yield env, instance, mlflow.url
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def launch(env: dict, job: str, op_selection: str | None = None) -> str:
    """``dagster job launch``: the run goes to the queued run coordinator; the daemon starts it. Returns its id."""
    run_id = str(uuid.uuid4())
    cmd = [str(Path(sys.executable).parent / "dagster"), "job", "launch", "-w", "workspace.yaml", "-j", job,
           "--run-id", run_id, *(["-o", op_selection] if op_selection else [])]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    return run_id


def run_worker_pid(instance, run_id: str) -> int | None:
    """The run worker's pid, from the engine event the run writes when its process starts."""
    for e in instance.all_logs(run_id):
        m = re.search(r"Started process for run \(pid: (\d+)\)", e.message or "")
        if m:
            return int(m.group(1))
    return None


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception:  # noqa: BLE001 - the database is restarting: ask again
            value = None
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def finished(instance, run_id: str):
    run = instance.get_run_by_id(run_id)
    return run if run.is_finished else None


def step_started(instance, run_id: str, step: str) -> bool:
    from dagster import DagsterEventType

    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_START).records
    return any(r.event_log_entry.step_key == step for r in records)


def test_daemon_runs_the_data_job_on_postgres_and_mlflow_server(plane):
    from dagster import DagsterRunStatus
    from mlflow.tracking import MlflowClient

    env, instance, mlflow_url = plane
    run_id = launch(env, "data_job")
    run = wait_for(lambda: finished(instance, run_id), 600, "data_job")
    assert run.status == DagsterRunStatus.SUCCESS, instance.all_logs(run_id)[-5:]
    materialized = {e.asset_materialization.asset_key.to_user_string() for e in instance.all_logs(run_id)
                    if e.asset_materialization is not None}
    assert {"items", "events", "loo_splits", "swing_pairs", "training_samples", "dataset_stats"} <= materialized
    client = MlflowClient(mlflow_url)
    runs = client.search_runs([client.get_experiment_by_name("oxyrec-data").experiment_id],
                              f"tags.dagster_run_id = '{run_id}'")
    assert {r.info.run_name: r.info.status for r in runs} == {"validate-synthetic": "FINISHED",
                                                              "stats-synthetic": "FINISHED"}
    stats = next(r for r in runs if r.info.run_name == "stats-synthetic")
    assert stats.data.metrics["users"] == 120
    # the overview plot went through the server's artifact proxy
    assert "overview.png" in {a.path for a in client.list_artifacts(stats.info.run_id)}


def test_a_run_terminated_mid_asset_is_retried_and_its_mlflow_run_fails(plane):
    from dagster import DagsterRunStatus
    from mlflow.tracking import MlflowClient

    env, instance, mlflow_url = plane
    first = launch(env, "data_job", "dataset_stats")  # its tables exist: one asset, one MLflow run
    wait_for(lambda: step_started(instance, first, "dataset_stats"), 300, "dataset_stats to start")
    time.sleep(3)  # inside the asset, with its MLflow run open
    pid = wait_for(lambda: run_worker_pid(instance, first), 30, "the run worker's pid")
    os.kill(pid, signal.SIGTERM)  # what a node drain or an operator's kill sends
    assert wait_for(lambda: finished(instance, first), 120, "the killed run").status == DagsterRunStatus.FAILURE
    retry = wait_for(lambda: [r for r in instance.get_runs() if r.tags.get("dagster/parent_run_id") == first], 120,
                     "the retry")[0]
    assert wait_for(lambda: finished(instance, retry.run_id), 600, "the retry").status == DagsterRunStatus.SUCCESS
    client = MlflowClient(mlflow_url)
    exp = client.get_experiment_by_name("oxyrec-data").experiment_id
    status = lambda rid: [r.info.status for r in client.search_runs([exp], f"tags.dagster_run_id = '{rid}'")]  # noqa
    assert status(first) == ["FAILED"] and status(retry.run_id) == ["FINISHED"]


def test_postgres_restarted_during_a_run_corrupts_no_run_record(plane, postgres):
    from dagster import DagsterRunStatus

    env, instance, _ = plane
    run_id = launch(env, "data_job", "dataset_stats")
    wait_for(lambda: step_started(instance, run_id, "dataset_stats"), 300, "dataset_stats to start")
    postgres.restart(down_s=5)
    run = wait_for(lambda: finished(instance, run_id), 600, "the run after the restart")
    if run.status != DagsterRunStatus.SUCCESS:  # failed with the error on record, then retried by the policy
        retry = wait_for(lambda: [r for r in instance.get_runs() if r.tags.get("dagster/parent_run_id") == run_id],
                         120, "the retry")[0]
        assert wait_for(lambda: finished(instance, retry.run_id), 600, "the retry").status == DagsterRunStatus.SUCCESS
    for r in instance.get_runs():  # every record and its event log still load
        assert r.is_finished and instance.all_logs(r.run_id)
