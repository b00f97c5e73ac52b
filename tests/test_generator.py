"""The generator: trie, constrained beam search (against brute force), placements, MoE, resume."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from oxy_dagster.model.checkpoint import latest_checkpoint
from oxy_dagster.model.config import COMPONENTS, PLACEMENTS, preset
from oxy_dagster.model.data import SampleTensors
from oxy_dagster.model.decoding import beam_search
from oxy_dagster.model.generator import Generator
from oxy_dagster.model.train import TrainConfig, train
from oxy_dagster.model.trie import CodeTrie

N_PROFILE = {"age_band": 7, "gender": 4, "spending_tier": 4, "city": 5}


def _catalogue(seed=0):
    rng = np.random.default_rng(seed)
    codes = np.unique(rng.integers(0, 6, (150, 3)), axis=0)
    return np.concatenate([codes, np.zeros((len(codes), 1), int)], 1)


def _model(codes, **kw):
    torch.manual_seed(0)
    cfg = preset("tiny", **{"code_vocab": (6, 6, 6, 1), "n_cate": 4, "n_brand": 4, "profile_vocab": N_PROFILE,
                            "dropout": 0.0, **kw})
    n = len(codes)
    return Generator(cfg, torch.from_numpy(codes), torch.arange(n) % 3 + 1, torch.arange(n) % 2 + 1,
                     torch.randn(n, 384))


def _batch(n_items, b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(short_items=torch.randint(0, n_items, (b, 20), generator=g),
                short_behaviors=torch.randint(1, 4, (b, 20), generator=g),
                long_items=torch.randint(0, n_items, (b, 12), generator=g),
                scenario=torch.arange(b) % 5, trigger=torch.where(torch.arange(b) % 2 == 0, n_items, 3),
                has_reasoning=torch.arange(b) % 3 == 0, reasoning=torch.randn(b, 384, generator=g),
                target=torch.randint(0, n_items, (b,), generator=g), weight=torch.ones(b),
                **{f"profile_{k}": torch.randint(0, v, (b,), generator=g) for k, v in N_PROFILE.items()})


def test_trie_masks_and_rejects_invalid():
    codes = np.array([[0, 1], [0, 2], [3, 0]])
    t = CodeTrie.build(codes, [4, 3])
    assert t.allowed_mask(0, torch.tensor([0])).tolist() == [[True, False, False, True]]
    p = t.step(0, torch.tensor([0, 0]), torch.tensor([0, 3]))
    assert t.allowed_mask(1, p).tolist() == [[False, True, True], [True, False, False]]
    with pytest.raises(ValueError, match="left the trie"):
        t.step(0, torch.tensor([0]), torch.tensor([1]))
    with pytest.raises(ValueError, match="not unique"):
        CodeTrie.build(np.array([[0, 1], [0, 1]]))


def _brute_force_logprob(model, batch, codes):
    """log p(code tuple) of every item for each user, by teacher forcing (no cache)."""
    n, b = len(codes), batch["target"].shape[0]
    scores = torch.empty(b, n)
    for u in range(b):
        one = {k: v[u:u + 1].expand(n, *v.shape[1:]) for k, v in batch.items()}
        one["target"] = torch.arange(n)
        with torch.no_grad():
            instr, query = model.instruction(one)
            memory, mask, _ = model.encode(one, query)
            prefix = model.prefix(instr)
            c = model.item_codes[one["target"]]
            toks = torch.stack([model.code_token(i, c[:, i]) for i in range(3)], 1)
            h, _ = model.decode(torch.cat([prefix, toks], 1), memory, mask)
            h = h[:, prefix.shape[1] - 1:]
            scores[u] = sum(F.log_softmax(model.heads[i](h[:, i]), -1).gather(1, c[:, i:i + 1]).squeeze(1)
                            for i in range(4))
    return scores


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_beam_search_matches_brute_force_and_is_always_valid(placement):
    codes = _catalogue()
    model = _model(codes, placement=placement).eval()
    batch = _batch(len(codes))
    trie = CodeTrie.build(codes, [6, 6, 6, 1])
    items, scores = beam_search(model, batch, trie, beam=512, topk=10)
    assert ((items >= 0) & (items < len(codes))).all()
    brute = _brute_force_logprob(model, batch, codes)
    top = brute.topk(10, dim=1)
    assert torch.equal(items, top.indices)
    assert torch.allclose(scores, top.values, atol=1e-4)
    small, _ = beam_search(model, batch, trie, beam=4, topk=10)  # narrow beam: still only real items
    assert ((small >= 0) & (small < len(codes))).all()


def test_candidate_pool_restricts_results():
    codes = _catalogue()
    model = _model(codes).eval()
    pool = np.arange(0, len(codes), 7)
    trie, rows = CodeTrie.build(codes, [6, 6, 6, 1]).restrict(codes, pool)
    items, scores = beam_search(model, _batch(len(codes)), trie, beam=64, topk=len(pool) + 5,
                                leaf_rows=torch.from_numpy(rows))
    got = items[items >= 0]
    assert set(got.tolist()) <= set(pool.tolist())
    assert ((items == -1) == torch.isinf(scores)).all() and (items == -1).sum(1).tolist() == [5] * 4


def test_exclude_history_drops_seen_items_and_keeps_order():
    codes = _catalogue()
    model = _model(codes).eval()
    batch = _batch(len(codes))
    trie = CodeTrie.build(codes, [6, 6, 6, 1])
    full, full_scores = beam_search(model, batch, trie, beam=512, topk=len(codes))
    seen = torch.cat([full[:, :6], torch.full((4, 3), len(codes))], 1)  # each user's 6 best + padding
    items, scores = beam_search(model, batch, trie, beam=512, topk=10, exclude=seen)
    assert torch.equal(items, full[:, 6:16]) and torch.allclose(scores, full_scores[:, 6:16])
    # A beam too narrow to hold K unseen items pads with -1 at the tail; it never returns a seen item.
    narrow, narrow_scores = beam_search(model, batch, trie, beam=4, topk=10, exclude=seen)
    assert not (narrow[:, :, None] == seen[:, None, :]).any() and ((narrow == -1) == torch.isinf(narrow_scores)).all()
    assert (narrow[:, 0] >= 0).all() and ((narrow[:, 1:] >= 0) <= (narrow[:, :-1] >= 0)).all()


@pytest.mark.parametrize("components", COMPONENTS)
def test_components_and_moe(components):
    codes = _catalogue()
    model = _model(codes, components=components, n_experts=4, top_k_experts=2)
    out = model(_batch(len(codes)))
    assert torch.isfinite(out["loss"]) and out["balance"] > 0 and out["q2i"] > 0
    out["loss"].backward()
    routed = [e for layer in model.encoder for e in layer.ffn.experts if e.net[0].weight.grad is not None]
    assert len(routed) >= 2  # several experts received tokens


def test_trigger_changes_the_output():
    codes = _catalogue()
    model = _model(codes).eval()
    b = _batch(len(codes))
    b2 = {**b, "trigger": torch.full_like(b["trigger"], 7)}
    with torch.no_grad():
        assert not torch.allclose(model.instruction(b)[1], model.instruction(b2)[1])


def test_igr_retrieves_items_close_to_the_instruction():
    codes = _catalogue()
    model = _model(codes, igr_k=3).eval()
    b = _batch(len(codes))
    _, query = model.instruction(b)
    chosen = model.retrieve_long(query, b["long_items"])
    with torch.no_grad():
        q = F.normalize(model.adapter(query), dim=-1)
        sims = torch.einsum("bd,bld->bl", q, model.item_adapter(b["long_items"]))
    for u in range(4):
        best = set(b["long_items"][u][sims[u].topk(3).indices].tolist())
        assert set(chosen[u].tolist()) == best


def _toy_data(codes, n=96):
    b = _batch(len(codes), b=n, seed=3)
    b["target"] = (b["short_items"][:, -1] + 1) % len(codes)  # learnable: next item after the last one
    import pandas as pd

    meta = pd.DataFrame({"user_id": [f"u{i}" for i in range(n)], "split": "train", "scenario": "homepage",
                         "target_item_id": "x"})
    return SampleTensors(b, meta, 0, [])


def test_killed_run_resumes_to_the_same_step_and_loss(tmp_path):
    codes = _catalogue()
    data = _toy_data(codes)
    rows = np.arange(len(data))
    cfg = TrainConfig(steps=8, batch_size=16, warmup=2, ckpt_every=100, log_every=1, lr=3e-3)
    full = train(_model(codes, dropout=0.1), data, rows, cfg, tmp_path / "a")
    part = train(_model(codes, dropout=0.1), data, rows, cfg, tmp_path / "b", stop_at=5)
    assert len(part) == 5 and latest_checkpoint(tmp_path / "b").name == "step-00000005"
    rest = train(_model(codes, dropout=0.1), data, rows, cfg, tmp_path / "b")  # a fresh process would do this
    assert [h["step"] for h in rest] == [6, 7, 8]
    np.testing.assert_allclose([h["loss"] for h in rest], [h["loss"] for h in full[5:]], rtol=1e-5)
    assert rest[-1]["loss"] < full[0]["loss"]
    assert not list((tmp_path / "b").glob(".tmp-*"))  # no half-written checkpoint left behind


def test_changed_config_starts_fresh_and_keeps_the_old_run(tmp_path):
    codes = _catalogue()
    data = _toy_data(codes)
    rows = np.arange(len(data))
    cfg = TrainConfig(steps=4, batch_size=16, warmup=1, log_every=1)
    assert len(train(_model(codes), data, rows, cfg, tmp_path / "ck")) == 4
    assert train(_model(codes), data, rows, cfg, tmp_path / "ck") == []  # same config: already done
    longer = TrainConfig(steps=6, batch_size=16, warmup=1, log_every=1, ckpt_every=3)
    with pytest.raises(ValueError, match="another training or model config"):
        train(_model(codes), data, rows, longer, tmp_path / "ck", on_change="error")
    fresh = train(_model(codes), data, rows, longer, tmp_path / "ck")
    assert [h["step"] for h in fresh] == [1, 2, 3, 4, 5, 6]  # a new cosine schedule, not steps 5-6 of the old one
    assert len(list(tmp_path.glob("ck.replaced-*"))) == 1
    budget = TrainConfig(steps=6, batch_size=16, warmup=1, log_every=1, max_wall_s=1e-9)
    stopped = train(_model(codes), data, rows, budget, tmp_path / "wall")
    assert len(stopped) == 1 and latest_checkpoint(tmp_path / "wall").name == "step-00000001"


def test_search_samples_take_the_query_rewrite_as_reasoning_text():
    import pandas as pd

    from oxy_dagster.model.data import Catalogue, build_tensors

    class Recorder:  # stands in for the text encoder: remembers what it was asked to embed
        def encode(self, texts, progress=False):
            self.seen = list(texts)
            return np.eye(len(texts), 384, dtype=np.float32)

    cat = Catalogue(np.array(["i1", "i2"]), np.array([[0, 0, 0, 0], [1, 0, 0, 0]]), np.array([1, 1]),
                    np.array([1, 1]), "V1")
    samples = pd.DataFrame({
        "user_id": ["u", "u", "v"], "target_item_id": ["i1", "i2", "i1"], "target_behavior": ["click"] * 3,
        "weight": [1.0] * 3, "scenario": ["search", "search", "homepage"], "trigger_item_id": [None] * 3,
        "instruction_source": ["query", "query", "default"], "instruction_text": ["Wine  GI", "tea", None],
        "short_item_ids": [["i2"], ["i1"], []], "short_behaviors": [["click"], ["click"], []],
        "long_item_ids": [[], [], []], "split": ["train"] * 3, "age_band": [None] * 3, "gender": [None] * 3,
        "city": [None] * 3, "spending_tier": [None] * 3})
    enc = Recorder()
    data = build_tensors(samples, cat, 4, 4, enc, rewrites={"wine gi": "Find a wine gift set"})
    assert sorted(enc.seen) == ["Find a wine gift set", "tea"]  # rewritten where a rewrite exists, raw otherwise
    assert data.tensors["has_reasoning"].tolist() == [True, True, False]


def test_history_repeat_rate_counts_targets_already_seen():
    from types import SimpleNamespace

    import pandas as pd

    from oxy_dagster.model.evaluate import history_repeat_rate

    t = {"target": torch.tensor([1, 2, 3, 4]), "short_items": torch.tensor([[1, 9], [5, 9], [9, 9], [4, 9]]),
         "long_items": torch.tensor([[9], [2], [9], [9]])}
    data = SimpleNamespace(tensors=t, meta=pd.DataFrame({"split": ["train", "train", "train", "test"]}))
    assert history_repeat_rate(data) == pytest.approx(2 / 3) and history_repeat_rate(data, "test") == 1.0
