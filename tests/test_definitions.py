"""The code location loads, with the lineage the design card asks for."""

import subprocess
import sys
from pathlib import Path

import dagster as dg

ROOT = Path(__file__).resolve().parent.parent


def test_definitions_load_with_lineage():
    from jobs.definitions import SID_VERSION, defs

    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"raw_items", "raw_users", "raw_events", "raw_impressions", "items", "users", "events", "impressions",
            "loo_splits", "swing_pairs",
            "training_samples", "dataset_stats"} <= keys
    parents = lambda k: {p.to_user_string() for p in graph.get(dg.AssetKey.from_user_string(k)).parent_keys}  # noqa: E731
    assert parents("events") == {"raw_events", "items", "users"}
    assert parents("impressions") == {"raw_impressions", "items", "users"}
    assert parents("loo_splits") == {"events"}
    assert parents("swing_pairs") == {"loo_splits"}
    assert parents("training_samples") == {"loo_splits", "users"}
    assert parents("item_embeddings") == {"item_text_embeddings", "swing_pairs", "loo_splits"}
    assert parents("sid_codebooks") == {"item_embeddings"}
    assert parents("sid_comparison") == {"sid_codebooks"}
    assert parents("item_text_embeddings") == {"items"}
    assert "training_samples" in parents("pretrained_checkpoint")
    assert parents("offline_eval") == {"pretrained_checkpoint"}
    assert {j.name for j in defs.resolve_all_job_defs()} >= {"main_job", "data_job", "sid_job", "generator_job",
                                                                  "ablation_job"}
    assert parents("ablation_report") == {"training_samples", "sid_codebooks"}
    assert parents("stp_instruction_table") == {"events", "users"}
    assert parents("query_rewrites") == {"events"}
    assert parents("user_instructions") == {"events", "items", "users"}
    assert "query_rewrites" in parents("pretrained_checkpoint")  # search samples train on the rewrites
    assert parents("deployed_model") == {"pretrained_checkpoint", "rl_checkpoint"}
    assert parents("ranking_model") == {"impressions", "events", "users", "loo_splits", "sid_codebooks"}
    assert parents("rl_checkpoint") == {"pretrained_checkpoint", "ranking_model", "query_rewrites",
                                        "user_instructions"}
    assert parents("rl_offline_eval") == {"rl_checkpoint", "offline_eval"}
    assert parents("rl_ablation_report") == {"pretrained_checkpoint", "ranking_model"}
    main = defs.resolve_job_def("main_job")
    assert "rl_checkpoint" in {k.to_user_string() for k in main.asset_layer.executable_asset_keys} and \
        "rl_ablation_report" not in {k.to_user_string() for k in main.asset_layer.executable_asset_keys}
    assert {"reasoning_job", "nearline_job"} <= {j.name for j in defs.resolve_all_job_defs()}
    assert defs.resolve_schedule_def("daily_reasoning_refresh").cron_schedule == "0 3 * * *"
    assert defs.resolve_sensor_def("nearline_instruction_sensor").job_name == "nearline_job"
    # SID versions are partitions of one codebook asset; the generator depends on the selected one only
    codebooks = graph.get(dg.AssetKey("sid_codebooks"))
    assert codebooks.partitions_def.get_partition_keys() == ["V1", "V2", "V3", "V4"]
    for downstream in ("pretrained_checkpoint", "ablation_report"):
        mapping = graph.get_partition_mapping(dg.AssetKey(downstream), dg.AssetKey("sid_codebooks"))
        assert mapping.partition_keys == [SID_VERSION], downstream
    assert graph.get(dg.AssetKey("sid_comparison")).partitions_def is None  # reads every version
    checks = {c.name for c in graph.asset_check_keys}
    assert {"events_schema", "events_quarantine", "loo_splits_one_target_per_user", "sid_quality"} <= checks


def test_unknown_environment_is_rejected():
    import pytest

    from jobs.resources import resources_for

    with pytest.raises(ValueError, match="OXY_ENV must be"):
        resources_for("staging")


def test_dagster_cli_validates_workspace():
    out = subprocess.run([sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
                         cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "Validation successful" in out.stdout + out.stderr


def test_one_table_of_a_multi_asset_materializes_alone(tmp_path):
    """``dagster asset materialize --select raw_items`` works: the raw and validated multi-assets are subsettable."""
    from assets.resources import DatasetResource
    from jobs.definitions import make_definitions
    from jobs.resources import resources_for

    defs = make_definitions(resources_for("local", dataset=DatasetResource(kind="synthetic", n_users=50)))
    key = dg.AssetKey("raw_items")
    result = defs.resolve_implicit_job_def_def_for_assets([key]).execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), asset_selection=[key])
    assert [e.asset_key for e in result.get_asset_materialization_events()] == [key]


def test_readme_settings_table_is_derived_from_the_stage_dataclasses():
    """The launchpad config and the README table come from the same dataclass defaults."""
    from assets.config import PretrainParams, readme_with_settings
    from oxy_dagster.model.config import ModelChoice, TrainConfig

    assert PretrainParams.model_fields["steps"].default == TrainConfig().steps
    assert PretrainParams.model_fields["engine"].default == TrainConfig().engine
    assert PretrainParams.model_fields["placement"].default == ModelChoice().placement
    readme = (ROOT / "README.md").read_text()
    assert readme_with_settings(readme) == readme, "regenerate it: python -m assets.config --write-readme"
