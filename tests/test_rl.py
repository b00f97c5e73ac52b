"""Rewards and post-training on the small synthetic shop: components by hand, bad rewards stop the step,
every objective runs, a killed RL run resumes to the same step and losses, the export evaluates."""

import json

import numpy as np
import pytest
import torch

from oxy_dagster.model.config import EvalConfig, TrainConfig
from oxy_dagster.model.pipeline import build_pretrained, load_pretrained, offline_eval
from oxy_dagster.ranking.model import RankerConfig
from oxy_dagster.rewards.service import COMPONENTS, RewardConfig, RewardService
from oxy_dagster.rl.pipeline import post_train
from oxy_dagster.rl.trainer import RLConfig

BASE = "rl-base"  # the pretrained generator these tests start from: models/rl-base-V1


@pytest.fixture(scope="module")
def stage(shop):
    from oxy_dagster.ranking.pipeline import build_rankers, load_ranker

    build_pretrained(shop, "V1", "tiny", TrainConfig(steps=40, batch_size=128, warmup=5, lr=3e-3, engine="torch"),
                     out_dir=shop.model("V1", BASE))
    build_rankers(shop, "V1", RankerConfig(epochs=0.25, requests=6), baseline=False)
    model, cat, data, trie = load_pretrained(shop, "V1", out_dir=shop.model("V1", BASE))
    ranker, meta = load_ranker(shop, "V1")
    return model, cat, data, trie, ranker, meta


@pytest.mark.slow
def test_reward_components_by_hand(stage):
    model, cat, data, _, ranker, meta = stage
    service = RewardService(model, ranker, meta, data.city_vocab)
    rows = np.flatnonzero((data.meta.split == "train").to_numpy())[:3]
    batch = data.batch(rows)
    same_l1 = np.flatnonzero(cat.codes[:, 0] == cat.codes[0, 0])[:2]  # two items sharing a level-1 code
    other = np.flatnonzero(cat.codes[:, 0] != cat.codes[0, 0])[0]
    items = torch.tensor([[same_l1[0], same_l1[1], other, -1]] * 3)
    r = service.score(batch, items)
    assert r["format"][:, 3].tolist() == [-1.0] * 3 and (r["format"][:, :3] == 0).all()
    assert torch.allclose(r["diversity"][0], torch.tensor([0.5, 0.5, 1.0, 0.0]))
    assert (r["ranking"][:, :3] > 0).all() and (r["ranking"][:, :3] < 1).all() and (r["ranking"][:, 3] == 0).all()
    with torch.no_grad():
        _, query = model.instruction(batch)
        q = torch.nn.functional.normalize(model.adapter(query), dim=-1)
        cos = (q[0] * model.item_adapter(torch.tensor([int(other)]))[0]).sum()
    assert r["relevance"][0, 2].item() == pytest.approx(cos.item(), abs=1e-5)
    w = RewardConfig().weights
    scen = [["homepage", "channel", "related", "cart", "search"][int(s)] for s in batch["scenario"]]
    want = sum(torch.tensor([w[s][c] for s in scen])[:, None] * r[c] for c in COMPONENTS)
    assert torch.allclose(r["total"], want)


@pytest.mark.slow
def test_a_bad_reward_or_a_missing_ranker_is_a_clear_error(stage):
    model, _, data, _, ranker, meta = stage
    with pytest.raises(ValueError, match="materialize ranking_model"):
        RewardService(model, None, meta, data.city_vocab)

    class NaNRanker(torch.nn.Module):  # the fault, injected: a ranker that returns NaN for the second sample
        cfg = ranker.cfg

        def forward(self, b):
            out = ranker(b)
            out[1] = float("nan")
            return out

    service = RewardService(model, NaNRanker(), meta, data.city_vocab)
    rows = np.array([10, 11, 12])
    with pytest.raises(FloatingPointError, match=r"sample rows \[11\]"):
        service.score(data.batch(rows), torch.zeros(3, 2, dtype=torch.long), rows)


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["grpo", "gspo", "sa_gcpo"])
def test_every_objective_trains(stage, shop, tmp_path, objective):
    cfg = RLConfig(objective=objective, steps=2, batch_size=8, group=4, lr=1e-4, ckpt_every=10)
    info = post_train(shop, "V1", cfg, out_dir=tmp_path / objective, pretrained_dir=shop.model("V1", BASE),
                      eval_rows=20, eval_every=2, beam=10)
    hist = json.loads((tmp_path / objective / "history.json").read_text())
    assert [h["step"] for h in hist] == [1, 2] and info["steps"] == 2
    key = "gated_frac" if objective == "sa_gcpo" else "clipped_frac"
    assert all(0.0 <= h[key] <= 1.0 and np.isfinite(h["loss"]) for h in hist)
    assert {"reward/total", "reward/ranking", "advantage_std", "entropy", "kl", "valid_hr@10"} <= set(hist[-1])


@pytest.mark.slow
def test_a_killed_rl_run_resumes_to_the_same_step_and_exports(stage, shop, tmp_path):
    cfg = RLConfig(steps=4, batch_size=8, group=4, lr=1e-4, ckpt_every=2, synthetic_ratio=0.25)
    base = shop.model("V1", BASE)
    post_train(shop, "V1", cfg, out_dir=tmp_path / "full", pretrained_dir=base, eval_every=0)
    post_train(shop, "V1", cfg, out_dir=tmp_path / "part", pretrained_dir=base, eval_every=0, stop_at=2)
    assert not (tmp_path / "part" / "checkpoints").exists()  # nothing exported from an unfinished run
    post_train(shop, "V1", cfg, out_dir=tmp_path / "part", pretrained_dir=base, eval_every=0)
    full = json.loads((tmp_path / "full" / "history.json").read_text())
    part = json.loads((tmp_path / "part" / "history.json").read_text())
    assert [h["step"] for h in part] == [1, 2, 3, 4]
    np.testing.assert_allclose([h["loss"] for h in part], [h["loss"] for h in full], rtol=1e-5)
    np.testing.assert_allclose([h["reward/total"] for h in part], [h["reward/total"] for h in full], rtol=1e-5)
    # the export is an ordinary generator checkpoint: offline evaluation reads it like the pretrained one
    result = offline_eval(shop, "V1", EvalConfig(beam=10, max_rows=30), out_dir=tmp_path / "part")
    assert result["invalid_items"] == 0 and result["evaluated"] == 30
    # an RL run is never resumed against another ranker
    ckpt = tmp_path / "part" / "train" / (tmp_path / "part" / "train" / "latest").read_text().strip()
    state = json.loads((ckpt / "state.json").read_text())
    (ckpt / "state.json").write_text(json.dumps({**state, "ranker_fingerprint": "another"}))
    with pytest.raises(ValueError, match="belongs to another ranker"):
        post_train(shop, "V1", RLConfig(**{**cfg.__dict__, "steps": 6}), out_dir=tmp_path / "part",
                   pretrained_dir=base, eval_every=0)


@pytest.mark.slow
def test_rl_over_two_processes_rolls_out_slices_and_exports(stage, shop, tmp_path):
    """torchrun, 2 gloo ranks (ZeRO-2): each rolls out half of every batch; rank 0 evaluates and exports."""
    cfg = RLConfig(steps=2, batch_size=8, group=4, lr=1e-4, ckpt_every=10, engine="deepspeed", zero_stage=2,
                   processes=2)
    records, lines = [], []
    info = post_train(shop, "V1", cfg, out_dir=tmp_path / "rl2", pretrained_dir=shop.model("V1", BASE),
                      eval_rows=20, eval_every=2, beam=10, log=records.append, echo=lines.append)
    hist = json.loads((tmp_path / "rl2" / "history.json").read_text())
    assert [h["step"] for h in hist] == [1, 2] == [r["step"] for r in records] and info["steps"] == 2
    assert np.isfinite(hist[-1]["loss"]) and "valid_hr@10" in hist[-1] and lines
    ckpt = tmp_path / "rl2" / "train" / (tmp_path / "rl2" / "train" / "latest").read_text().strip()
    assert json.loads((ckpt / "state.json").read_text())["world_size"] == 2
    result = offline_eval(shop, "V1", EvalConfig(beam=10, max_rows=20), out_dir=tmp_path / "rl2")
    assert result["invalid_items"] == 0 and result["evaluated"] == 20
