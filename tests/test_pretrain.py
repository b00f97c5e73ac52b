"""Pre-training and offline evaluation on a small synthetic shop (real data path, real encoders)."""

import numpy as np
import pytest

from oxy_dagster.model import pipeline
from oxy_dagster.model.config import EvalConfig, TrainConfig, preset
from oxy_dagster.model.evaluate import evaluate, ranking_metrics
from oxy_dagster.model.pipeline import build_pretrained, load_pretrained, load_pretrained_many, offline_eval, prepare
from oxy_dagster.sid.build import build_codebook


def test_ranking_metrics_known_answer():
    pred = np.array([[3, 1, 2], [5, 6, 7], [9, -1, -1]])
    m = ranking_metrics(pred, np.array([1, 4, 9]), ks=(1, 3))
    assert m["recall@1"].tolist() == [0, 0, 1] and m["recall@3"].tolist() == [1, 0, 1]
    assert m["ndcg@3"][0] == pytest.approx(1 / np.log2(3)) and m["ndcg@3"][2] == 1.0


@pytest.mark.slow
def test_pretraining_learns_and_evaluation_is_valid(shop):
    info = build_pretrained(shop, "V1", "tiny",
                            TrainConfig(steps=150, batch_size=128, warmup=10, lr=3e-3, engine="torch"))
    assert info["train_samples"] > 5000 and info["params"] > 0
    trained = offline_eval(shop, "V1", EvalConfig(beam=30))
    assert trained["invalid_items"] == 0 and trained["evaluated"] == 400
    for k in ("recall@5", "ndcg@10", "hr@20", "hier_recall@20_l1", "homepage/recall@10"):
        assert k in trained
    assert trained["hier_recall@20_l1"] >= trained["hier_recall@20_l2"] >= trained["recall@20"]
    cat, data, fresh, trie = prepare(shop, "V1", preset("tiny"))
    untrained = evaluate(fresh, data, trie, cat.codes, beam=30, progress=False)
    assert trained["recall@20"] > untrained["recall@20"] + 0.02
    assert trained["hier_recall@20_l1"] > untrained["hier_recall@20_l1"]


@pytest.mark.slow
def test_checkpoint_from_another_codebook_is_refused(shop):
    build_pretrained(shop, "V1", "tiny", TrainConfig(steps=2, batch_size=32, warmup=1, engine="torch"))
    load_pretrained(shop, "V1")  # loads while the codebook is unchanged
    build_codebook(shop, "V1", width=16)  # a new codebook for the same version name
    try:
        with pytest.raises(ValueError, match="belongs to SID V1 codes"):
            load_pretrained(shop, "V1")
    finally:
        build_codebook(shop, "V1", width=32)  # the shared shop's codebook again (deterministic: same codes)


@pytest.mark.slow
def test_several_checkpoints_share_one_preparation_of_the_samples(shop, tmp_path, monkeypatch):
    """An ensemble's members load with the catalogue and sample tensors built once; a member of another history
    length gets its own, and every member's weights are those load_pretrained gives it alone."""
    dirs = [tmp_path / "a", tmp_path / "b", tmp_path / "short"]
    for d, seed, overrides in zip(dirs, (0, 1, 0), ({}, {}, {"max_short": 8})):
        build_pretrained(shop, "V1", "tiny", TrainConfig(steps=2, batch_size=32, warmup=1, seed=seed, engine="torch"),
                         out_dir=d, **overrides)
    built = []
    real = pipeline.prepare_inputs
    monkeypatch.setattr(pipeline, "prepare_inputs", lambda *a, **k: built.append(a[2]) or real(*a, **k))
    models, cat, data, _ = load_pretrained_many(shop, "V1", dirs)
    assert built == [20, 8] and len(models) == 3
    assert data.tensors["short_items"].shape[1] == 20 and len(cat.item_ids) == models[0].pad_item
    for d, model in zip(dirs, models):
        alone = load_pretrained(shop, "V1", out_dir=d)[0].state_dict()
        assert all(np.array_equal(alone[k].numpy(), v.numpy()) for k, v in model.state_dict().items())
    a, b = models[0].state_dict(), models[1].state_dict()
    assert any(not np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)  # two seeds, two different members


@pytest.mark.slow
def test_ablation_runner_trains_each_config_once(shop):
    from oxy_dagster.model.ablation import AblationConfig, ablation_markdown, run_ablations

    acfg = AblationConfig(sid_version="V1", steps=3, batch_size=32, beam=10, eval_rows=60)
    result = run_ablations(shop, acfg, tables=["table7_igr_q2i", "table6_components"])
    rows = result["rows"]
    assert [r["variant"] for r in rows[:3]] == ["no IGR (recent long items), no Q2I", "IGR, no Q2I", "IGR + Q2I"]
    fused = next(r for r in rows if r["variant"] == "fused")
    assert fused["hr@10"] == rows[2]["hr@10"]  # the default configuration was trained once and reused
    trained = list((shop.root / "models" / "ablations").iterdir())
    assert len(trained) == 3 + 4 - 1  # the default appears in both tables
    assert set(result["trigger_masking"]) == {"channel", "related", "cart"}
    assert "table9_trigger_masking" in ablation_markdown(result)


@pytest.mark.slow
def test_ablation_runner_reports_mean_and_std_over_seeds(shop):
    from oxy_dagster.model.ablation import AblationConfig, _mean_std, ablation_markdown, run_ablations

    agg = _mean_std([{"recall@10": 0.2, "params": 5}, {"recall@10": 0.4, "params": 5}])
    assert agg["recall@10"] == pytest.approx(0.3) and agg["recall@10_std"] == pytest.approx(0.1)
    acfg = AblationConfig(sid_version="V1", steps=3, batch_size=32, beam=10, eval_rows=60, n_seeds=2)
    result = run_ablations(shop, acfg, tables=["table7_igr_q2i"])
    assert len(list((shop.root / "models" / "ablations").glob("*seed_1"))) == 3  # every variant, second seed
    assert all(r["seeds"] == 2 and r["recall@10_std"] >= 0 for r in result["rows"])
    assert " ± " in ablation_markdown(result)


@pytest.mark.slow
@pytest.mark.parametrize("size,moe", [("small-moe", "deepspeed")])
def test_two_process_deepspeed_launcher_trains_and_resumes(shop, tmp_path, size, moe):
    """torchrun, 2 CPU processes on gloo, ZeRO-2: each rank saves its optimizer partition, pickle-free.

    With ``--moe deepspeed`` each rank holds half of every layer's experts (expert parallelism); the
    checkpoint still holds all of them, in the native layout.
    """
    import json
    import os
    import subprocess
    import sys

    from oxy_dagster.net import free_port

    out = tmp_path / "ds2"

    def launch(*extra):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               str(free_port()), "-m", "oxy_dagster.model.cli", "--root", str(shop.root), "--version", "V1",
               "--size", size, "--moe", moe, "--steps", "4", "--batch-size", "32", "--warmup", "1",
               "--engine", "deepspeed", "--zero-stage", "2", "--out", str(out), *extra]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads((out / "history.json").read_text())

    first = launch("--stop-at", "2")
    assert [h["step"] for h in first] == [1, 2]
    rest = launch()
    assert [h["step"] for h in rest] == [3, 4]
    ckpt = out / "checkpoints" / "step-00000004"
    state = json.loads((ckpt / "state.json").read_text())
    assert state["world_size"] == 2 and state["zero_stage"] == 2
    assert state["expert_parallel"] == (2 if moe == "deepspeed" else 0)
    if moe == "deepspeed":  # every expert gathered under its global index, each trained on its own rank
        from safetensors.torch import load_file

        weights = load_file(str(ckpt / "model.safetensors"))
        first = sorted(k for k in weights if k.endswith("experts.0.net.0.weight"))
        assert len(first) == 4  # small-moe: 2 encoder + 2 decoder MoE layers
        for k in first:
            assert k.replace("experts.0.", "experts.3.") in weights
            assert not np.allclose(weights[k].numpy(), weights[k.replace("experts.0.", "experts.2.")].numpy())
    assert {p.name for p in ckpt.iterdir()} == {"model.safetensors", "state.json", "optimizer-rank0.safetensors",
                                                "optimizer-rank1.safetensors", "optimizer-rank0.json",
                                                "optimizer-rank1.json"}
    model, cat, data, trie = load_pretrained(shop, "V1", out_dir=out)  # the serving path reads it like any other
    assert evaluate(model, data, trie, cat.codes, beam=10, max_rows=50, progress=False)["invalid_items"] == 0


@pytest.mark.slow
def test_pretrained_checkpoint_trains_over_two_processes_and_checkpoints_reshard(shop, tmp_path):
    """The asset starts 2 ranks (torchrun, gloo) whose progress reaches the Dagster run; their loss curve
    matches one process; a 2-process checkpoint loads into 1 process exactly, and a 1-process one resumes on 2."""
    import json
    import logging
    import shutil

    import dagster as dg
    from safetensors.torch import load_file

    from assets.model.pretrain import generator_assets
    from assets.resources import DatasetResource, MlflowResource
    from oxy_dagster.model.checkpoint import latest_checkpoint, write_latest
    from oxy_dagster.model.engine import make_engine
    from oxy_dagster.model.pipeline import build_pretrained
    from oxy_dagster.paths import DataPaths

    paths = DataPaths(tmp_path / "shop")
    shutil.copytree(shop.root, paths.root, ignore=shutil.ignore_patterns("models"))
    schedule = dict(steps=30, batch_size=64, warmup=5, lr=3e-3, seed=0, engine="deepspeed")
    one_dir = tmp_path / "one"
    one = TrainConfig(**schedule, zero_stage=2, ckpt_every=15, log_every=1)
    build_pretrained(paths, "V1", "tiny", one, out_dir=one_dir)
    curve1 = json.loads((one_dir / "history.json").read_text())

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(generator_assets("V1")[:1], instance=instance, resources={
        "paths": paths, "dataset": DatasetResource(),
        "mlflow_tracking": MlflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")},
        run_config={"ops": {"pretrained_checkpoint": {"config": {
            "size": "tiny", **schedule, "zero_stage": 2, "processes": 2}}}})
    assert result.success
    logs = {(e.level, e.user_message) for e in instance.all_logs(result.run_id) if not e.is_dagster_event}
    # the ranks' progress, parsed, at INFO; their raw output (the progress bar among it) at DEBUG
    assert any(level == logging.INFO and m.startswith("step 30/30: loss") for level, m in logs)
    assert any(level == logging.DEBUG and m.startswith("pretrain: 100%") for level, m in logs)
    meta = result.asset_materializations_for_node("pretrained_checkpoint")[0].metadata
    assert meta["processes"].value == 2
    curve2 = json.loads((paths.model("V1") / "history.json").read_text())
    assert [h["step"] for h in curve2] == list(range(1, 31))
    # the global batch's losses, averaged over both ranks (Q2I's negatives gathered from both): one process's
    # curve, within 5% over the last 10 steps (the ranks draw other dropout masks)
    for key in ("loss", "ntp", "q2i"):
        last1, last2 = (np.mean([h[key] for h in c[-10:]]) for c in (curve1, curve2))
        print(key, last1, last2)
        assert abs(last2 - last1) / last1 < 0.05, (key, last1, last2)
    # it learns: batches are grouped by history length, so one step's loss varies with its group; compare means
    assert np.mean([h["loss"] for h in curve2[-10:]]) < 0.9 * np.mean([h["loss"] for h in curve2[:3]])

    # 2 processes -> 1: every weight and Adam moment arrives as written (here also ZeRO-2 -> ZeRO-1)
    ckpt2 = latest_checkpoint(paths.model("V1") / "checkpoints")
    assert json.loads((ckpt2 / "state.json").read_text())["world_size"] == 2
    _, _, model, _ = prepare(paths, "V1", preset("tiny"))
    engine = make_engine(model, TrainConfig(**schedule, zero_stage=1))
    assert engine.load(ckpt2)["step"] == 30
    saved, loaded = load_file(str(ckpt2 / "optimizer-full.safetensors")), engine._full_optimizer_state()
    assert all(np.array_equal(saved[k].numpy(), loaded[k].numpy()) for k in saved)

    # 1 process -> 2: the 1-process run's step-15 checkpoint, resumed by 2 ranks, ends on the 1-process curve
    resumed = tmp_path / "resumed"
    shutil.copytree(one_dir / "checkpoints" / "step-00000015", resumed / "checkpoints" / "step-00000015")
    write_latest(resumed / "checkpoints", resumed / "checkpoints" / "step-00000015")
    lines: list[str] = []
    build_pretrained(paths, "V1", "tiny", TrainConfig(**{**one.__dict__, "processes": 2}), out_dir=resumed,
                     echo=lines.append)
    tail = json.loads((resumed / "history.json").read_text())
    assert [h["step"] for h in tail] == list(range(16, 31)) and lines
    assert json.loads((latest_checkpoint(resumed / "checkpoints") / "state.json").read_text())["world_size"] == 2
    np.testing.assert_allclose(np.mean([h["ntp"] for h in tail[-10:]]), np.mean([h["ntp"] for h in curve1[-10:]]),
                               rtol=0.05)


def test_launch_streams_progress_lines_and_names_a_failed_rank(tmp_path):
    """``launch`` on a stand-in rank module: rank 0's progress record is parsed even behind a progress bar's
    frame, other lines are passed on, and a failing rank's message is in the error."""
    from oxy_dagster.model.launch import launch

    (tmp_path / "stand_in_rank.py").write_text(
        "import os, sys\n"
        "rank = int(os.environ['RANK'])\n"
        # one write() per line (atomic on a pipe), so the two ranks' lines cannot interleave mid-line
        "if rank == 0:\n"  # a progress bar's frame without a newline, then the record
        "    sys.stdout.write('\\rbar 50%OXY_PROGRESS {\"step\": 1, \"loss\": 2.0}\\n')\n"
        "sys.stdout.write(f'rank {rank} done\\n')\n"
        "sys.stdout.flush()\n"
        "if len(sys.argv) > 1 and rank == 1:\n"
        "    raise SystemExit('rank 1 broke: ' + sys.argv[1])\n")
    records, lines = [], []
    env = {"PYTHONPATH": str(tmp_path)}
    launch("stand_in_rank", [], 2, on_line=lines.append, on_record=records.append, env=env)
    assert records == [{"step": 1, "loss": 2.0}]
    assert {"rank 0 done", "rank 1 done"} <= set(lines) and "bar 50%" in lines
    with pytest.raises(RuntimeError, match=r"(?s)2-process training .* exited with code 1.*rank 1 broke: on purpose"):
        launch("stand_in_rank", ["on purpose"], 2, env=env)
