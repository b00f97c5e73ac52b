"""End to end: the default graph materializes; the webserver launches a run through GraphQL."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import mlflow
import pytest
import requests

from oxy_dagster.net import free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_main_job_materializes_default_graph(spark, work_dir):
    from assets.resources import DatasetResource
    from jobs.definitions import SID_VERSION, make_definitions
    from jobs.resources import resources_for

    defs = make_definitions(resources_for("local", dataset=DatasetResource(kind="synthetic", n_users=300)))
    run_config = {"ops": {"pretrained_checkpoint": {"config": {"size": "tiny", "steps": 80, "batch_size": 64,
                                                                "warmup": 5, "lr": 3e-3}},
                          "offline_eval": {"config": {"beam": 20}},
                          "stp_instruction_table": {"config": {"max_triples": 2, "max_pairs": 2}},
                          "query_rewrites": {"config": {"max_queries": 3}},
                          "user_instructions": {"config": {"max_users": 3}},
                          "ranking_model": {"config": {"epochs": 0.5}},
                          "rl_checkpoint": {"config": {"steps": 3, "batch_size": 8, "group": 4}},
                          "rl_offline_eval": {"config": {"beam": 20, "max_rows": 100}}}}
    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_job_def("main_job").execute_in_process(instance=instance, run_config=run_config)
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) >= 8 and all(e.passed for e in evaluations), [
        (e.check_name, e.metadata) for e in evaluations if not e.passed]
    events = result.get_asset_materialization_events()
    mats = {m.asset_key.to_user_string(): m for m in events}
    # one run built every SID version: one materialization per partition, each with its own observation
    for key in ("item_embeddings", "sid_codebooks"):
        assert sorted(e.partition for e in events if e.asset_key.to_user_string() == key) == ["V1", "V2", "V3", "V4"]
    observed = {(o.asset_key.to_user_string(), o.partition): o.asset_observation_data.asset_observation.metadata
                for o in result.all_events if o.event_type_value == "ASSET_OBSERVATION"}
    assert observed[("sid_codebooks", "V2")]["coverage_l1"].value == \
        mats["sid_codebooks"].materialization.metadata["V2/coverage_l1"].value
    assert "unique_items" in mats["sid_comparison"].materialization.metadata["table"].value
    ckpt_meta = mats["pretrained_checkpoint"].materialization.metadata
    assert ckpt_meta["sid_version"].value == SID_VERSION and "base64" in ckpt_meta["training_curves"].value
    eval_meta = mats["offline_eval"].materialization.metadata
    assert eval_meta["invalid_items"].value == 0 and eval_meta["evaluated"].value == 300  # every test user
    # 80 steps of a tiny model already rank far better than chance (10 of the catalogue's items at random)
    n_items = mats["items"].materialization.metadata["rows"].value
    assert eval_meta["recall_at_10"].value > 3 * 10 / n_items, (eval_meta["recall_at_10"].value, n_items)
    assert eval_meta["hier_recall_at_20_l1"].value >= eval_meta["hier_recall_at_20_l2"].value \
        >= eval_meta["hier_recall_at_20_l3"].value >= eval_meta["recall_at_20"].value
    saved = json.loads((work_dir / "data" / "synthetic" / "models" / f"pretrained-{SID_VERSION}" /
                        "eval_test.json").read_text())
    assert saved["recall@10"] == eval_meta["recall_at_10"].value  # the file and the metadata agree
    # post-training: the ranker's table, the RL run and its evaluation next to the pretrained model
    assert "unified AUC" in mats["ranking_model"].materialization.metadata["table"].value
    rl_meta = mats["rl_checkpoint"].materialization.metadata
    assert rl_meta["steps"].value == 3 and "base64" in rl_meta["reward_and_hr"].value
    rl_eval = mats["rl_offline_eval"].materialization.metadata
    assert rl_eval["invalid_items"].value == 0 and rl_eval["evaluated"].value == 100
    assert abs(rl_eval["delta/recall_at_10"].value) <= 1  # a difference of two recalls, both measured
    # the deployed model: chosen on validation among pretrained and RL, registered as oxyrec@champion, its bundle
    # reproduces offline_eval
    deployed = mats["deployed_model"].materialization.metadata
    assert deployed["chosen"].value in ("pretrained", "rl")
    assert deployed["registered"].value.endswith("(alias champion)")
    assert set(deployed["choice"].value) == {"pretrained", "rl"}
    check = next(e for e in evaluations if e.check_name == "bundle_reproduces_offline_eval")
    assert check.metadata["checked_users"].value == 50 == check.metadata["same_top10"].value
    assert deployed["histories_written"].value == 300
    stp_meta = mats["stp_instruction_table"].materialization.metadata  # the embedded LLM, for real
    assert stp_meta["keys"].value + stp_meta["failed"].value >= 4 and stp_meta["llm_requests"].value >= 1
    intents = mats["user_instructions"].materialization.metadata
    assert intents["active_users"].value == 3 and intents["stored_users"].value >= intents["written"].value
    events_meta = mats["events"].materialization.metadata
    assert events_meta["rows"].value > 5000
    assert events_meta["quarantined_rows"].value > 0  # the default data carries a few defects on purpose
    stats_meta = mats["dataset_stats"].materialization.metadata
    assert stats_meta["users"].value == 300 and "base64" in stats_meta["overview"].value
    # MLflow: runs of the data stage, tagged with this Dagster run, with the plot as an artifact.
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    runs = mlflow.search_runs(experiment_names=["oxyrec-data"],
                              filter_string=f"tags.dagster_run_id = '{result.run_id}'", output_format="list")
    assert {r.info.run_name for r in runs} == {"validate-synthetic", "stats-synthetic"}
    sid_runs = mlflow.search_runs(experiment_names=["oxyrec-sid"],
                                  filter_string=f"tags.dagster_run_id = '{result.run_id}'", output_format="list")
    names = {r.info.run_name for r in sid_runs}
    assert {f"V{i}-sid_codebooks-synthetic" for i in range(1, 5)} | {"comparison-synthetic"} <= names
    v3 = next(r for r in sid_runs if r.info.run_name == "V3-item_embeddings-synthetic")
    assert len(mlflow.MlflowClient().get_metric_history(v3.info.run_id, "loss")) > 5  # a loss curve
    stats_run = next(r for r in runs if r.info.run_name == "stats-synthetic")
    assert stats_run.data.metrics["users"] == 300
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(stats_run.info.run_id)}
    assert {"overview.png", "stats.json"} <= artifacts
    # one SID version can be rebuilt alone: a run for partition V2 touches V2 only
    job = defs.resolve_implicit_job_def_def_for_assets([dg.AssetKey("sid_codebooks")])
    again = job.execute_in_process(instance=instance, partition_key="V2",
                                   asset_selection=[dg.AssetKey("sid_codebooks")])
    assert [(e.asset_key.to_user_string(), e.partition) for e in again.get_asset_materialization_events()] == \
        [("sid_codebooks", "V2")]


def _graphql(url, query, variables=None):
    r = requests.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
    r.raise_for_status()
    body = r.json()
    assert "errors" not in body, body
    return body["data"]


LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
STATUS = "query S($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
AUTOMATION = """
query A($repo: RepositorySelector!) {
  sensorsOrError(repositorySelector: $repo) { ... on Sensors { results { name } } }
  schedulesOrError(repositorySelector: $repo) { ... on Schedules { results { name cronSchedule } } }
}"""


@pytest.mark.slow
def test_webserver_launches_a_run_through_graphql(tmp_path):
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster_home"), "OXY_HOME": str(tmp_path / "oxy"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "OXY_SYNTHETIC_USERS": "150"}
    Path(env["DAGSTER_HOME"]).mkdir()
    Path(env["DAGSTER_HOME"], "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    log = open(tmp_path / "dagster_dev.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", str(port),
                             "-w", "workspace.yaml"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # own process group: SIGTERM reaches webserver + daemon
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if requests.get(f"{url}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None, (tmp_path / "dagster_dev.log").read_text()[-3000:]
            time.sleep(1)
        else:
            pytest.fail("dagster dev did not answer /server_info in 120 s")
        params = {"selector": {"repositoryLocationName": "jobs.definitions", "repositoryName": "__repository__",
                               "jobName": "data_job"}, "runConfigData": {}}
        for _ in range(30):  # the code location may still be loading
            launched = _graphql(url, LAUNCH, {"params": params})["launchRun"]
            if launched["__typename"] == "LaunchRunSuccess":
                break
            time.sleep(2)
        assert launched["__typename"] == "LaunchRunSuccess", json.dumps(launched)
        repo = {"repositoryLocationName": "jobs.definitions", "repositoryName": "__repository__"}
        auto = _graphql(url, AUTOMATION, {"repo": repo})  # the near-line sensor and daily schedule are in the UI
        assert [x["name"] for x in auto["sensorsOrError"]["results"]] == ["nearline_instruction_sensor"]
        assert auto["schedulesOrError"]["results"] == [{"name": "daily_reasoning_refresh", "cronSchedule": "0 3 * * *"}]
        run_id = launched["run"]["runId"]
        deadline, status = time.time() + 420, None
        while time.time() < deadline:
            status = _graphql(url, STATUS, {"id": run_id})["runOrError"]["status"]
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                break
            time.sleep(3)
        assert status == "SUCCESS", (tmp_path / "dagster_dev.log").read_text()[-3000:]
        assert (tmp_path / "oxy" / "data" / "synthetic" / "samples" / "_schema.json").exists()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    assert proc.returncode is not None
