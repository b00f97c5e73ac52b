"""End to end: the default graph materializes; the Dagster and MLflow UIs show it in a real browser."""

import json
import os
from pathlib import Path

import dagster as dg
import mlflow
import pytest

from oxy_dagster.net import free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def default_graph(spark, work_dir, tmp_path_factory):
    """main_job on the default synthetic shop (short training settings), recorded in a persistent SQLite instance
    that the browser test then opens in the Dagster UI: (defs, instance, result, dagster_home)."""
    from assets.resources import DatasetResource
    from jobs.definitions import make_definitions
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
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = defs.resolve_job_def("main_job").execute_in_process(instance=instance, run_config=run_config)
        yield defs, instance, result, home


@pytest.mark.slow
def test_main_job_materializes_default_graph(default_graph, work_dir):
    from jobs.definitions import SID_VERSION

    defs, instance, result, _ = default_graph
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


DESIGN_CARD = ("item_embeddings", "sid_codebooks", "stp_instruction_table", "user_instructions",
               "pretrained_checkpoint", "rl_checkpoint", "deployed_model")


@pytest.mark.slow
def test_the_uis_in_a_real_browser(default_graph, work_dir, require_installed):
    """Debian's headless Chromium on the Dagster UI (webserver + daemon over the instance main_job wrote) and on the
    MLflow UI: lineage of the design-card assets, a materialization launched by clicking, the sensor and schedule
    pages, a plot in an asset's metadata, the V1-V4 SID comparison. Screenshots go to the test artifacts."""
    from oxy_dagster.infra.process import ManagedProcess, mlflow_server, venv_bin
    from oxy_dagster.infra.ui_checks import DagsterUIChecks, Page, browser, chromium_paths, mlflow_compare_check

    require_installed(chromium_paths() is not None, "chromium / chromedriver", "chromium chromium-driver")
    defs, _, result, home = default_graph
    graph = defs.resolve_asset_graph()
    lineage = {a: [k.to_user_string() for k in graph.get(dg.AssetKey(a)).parent_keys] for a in DESIGN_CARD}
    client = mlflow.MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    sid_exp = client.get_experiment_by_name("oxyrec-sid").experiment_id
    sid_runs = {r.info.run_name: r.info.run_id for r in client.search_runs(
        [sid_exp], f"tags.dagster_run_id = '{result.run_id}'") if "sid_codebooks" in r.info.run_name}
    shots = Path(os.environ.get("OXY_TEST_ARTIFACTS", ROOT / ".oxy" / "test-artifacts")) / "ui"
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "OXY_SYNTHETIC_USERS": "300"}
    web = ManagedProcess([venv_bin("dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                         work_dir / "webserver.log", env=env, cwd=ROOT, port=port)
    daemon = ManagedProcess([venv_bin("dagster-daemon"), "run", "-w", "workspace.yaml"], work_dir / "daemon.log",
                            env=env, cwd=ROOT)
    with web, daemon, mlflow_server(os.environ["MLFLOW_TRACKING_URI"], work_dir / "mlflow-artifacts",
                                    work_dir / "mlflow-server.log") as ml:
        driver = browser()
        try:
            page = Page(driver, shots)
            ui = DagsterUIChecks(page, f"http://127.0.0.1:{port}")
            ui.dismiss_popups()
            checks = [ui.asset_graph(["data", "sid", "generator", "post_training", "serving", "reasoning"]),
                      ui.lineage(lineage),
                      ui.materialize_by_click("dataset_stats"),
                      ui.metadata_plot("dataset_stats", "overview"),
                      ui.automation("sensor", "nearline_instruction_sensor", ["nearline_job"]),
                      ui.automation("schedule", "daily_reasoning_refresh", ["reasoning_job", "0 3 * * *"]),
                      mlflow_compare_check(page, ml.url, sid_exp, sid_runs, ["coverage_l1", "balance_p25"])]
        finally:
            driver.quit()
    (shots / "checks.json").write_text(json.dumps([c.__dict__ for c in checks], indent=1))
    assert len(sid_runs) == 4
    assert all(c.passed for c in checks), [(c.name, c.detail) for c in checks if not c.passed]
    assert all(Path(c.screenshot).stat().st_size > 10_000 for c in checks)
