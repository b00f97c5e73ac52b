"""The code location loads, with the lineage the design card asks for."""

import subprocess
import sys
from pathlib import Path

import dagster as dg

ROOT = Path(__file__).resolve().parent.parent


def test_definitions_load_with_lineage():
    from jobs.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"raw_items", "raw_users", "raw_events", "items", "users", "events", "loo_splits", "swing_pairs",
            "training_samples", "dataset_stats"} <= keys
    parents = lambda k: {p.to_user_string() for p in graph.get(dg.AssetKey.from_user_string(k)).parent_keys}  # noqa: E731
    assert parents("events") == {"raw_events", "items", "users"}
    assert parents("loo_splits") == {"events"}
    assert parents("swing_pairs") == {"loo_splits"}
    assert parents("training_samples") == {"loo_splits", "users"}
    for v in ("V1", "V2", "V3", "V4"):
        assert parents(f"{v}/item_embeddings") == {"item_text_embeddings", "swing_pairs", "loo_splits"}
        assert parents(f"{v}/sid_codebooks") == {f"{v}/item_embeddings"}
    assert parents("sid_comparison") == {f"V{i}/sid_codebooks" for i in range(1, 5)}
    assert parents("item_text_embeddings") == {"items"}
    assert "training_samples" in parents("pretrained_checkpoint")
    assert parents("offline_eval") == {"pretrained_checkpoint"}
    assert {j.name for j in defs.resolve_all_job_defs()} >= {"main_job", "data_job", "sid_job", "generator_job",
                                                                  "ablation_job"}
    assert parents("ablation_report") == {"training_samples", "V3/sid_codebooks"}
    assert parents("stp_instruction_table") == {"events", "users"}
    assert parents("query_rewrites") == {"events"}
    assert parents("user_instructions") == {"events", "items", "users"}
    assert "query_rewrites" in parents("pretrained_checkpoint")  # search samples train on the rewrites
    assert {"reasoning_job", "nearline_job"} <= {j.name for j in defs.resolve_all_job_defs()}
    assert defs.resolve_schedule_def("daily_reasoning_refresh").cron_schedule == "0 3 * * *"
    assert defs.resolve_sensor_def("nearline_instruction_sensor").job_name == "nearline_job"
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
