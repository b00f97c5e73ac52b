"""The unified ranking model: the block-causal mask, AUC / GAUC, learning on the synthetic shop's impressions."""

import numpy as np
import pandas as pd
import pytest
import torch

from oxy_dagster.data.contract import SCENARIOS
from oxy_dagster.model.data import Catalogue
from oxy_dagster.ranking.data import pack, requests_from_impressions, requests_from_interactions
from oxy_dagster.ranking.model import RankerConfig, block_causal_mask
from oxy_dagster.ranking.train import auc, build


def _catalogue(n=30):
    rng = np.random.default_rng(0)
    codes = np.unique(rng.integers(0, 5, (n * 3, 3)), axis=0)[:n]
    return Catalogue(np.array([f"i{k:02d}" for k in range(len(codes))]), codes, np.arange(len(codes)) % 4 + 1,
                     np.arange(len(codes)) % 3 + 1, "V1")


class OneHotText:  # stands in for the text encoder: one vector per distinct text
    def encode(self, texts, progress=False):
        return np.eye(len(texts), 8, dtype=np.float32)


def _tiny_windows(cat, cfg):
    rows = []
    for u in range(6):
        for r in range(5):
            for p in range(4):
                item = cat.item_ids[(u * 7 + r * 3 + p) % len(cat.item_ids)]
                rows.append((f"u{u}-r{r}", f"u{u}", item, pd.Timestamp("2025-01-01") + pd.Timedelta(hours=u + 10 * r),
                             ["homepage", "search", "related"][r % 3], p, None, "red shoes" if r % 3 == 1 else None,
                             float(p == r % 4), float(p == r % 4 and u % 2 == 0), 0.0))
    shown = pd.DataFrame(rows, columns=["request_id", "user_id", "item_id", "timestamp", "scenario", "position",
                                        "trigger_item_id", "query", "click", "cart", "purchase"])
    users = pd.DataFrame({"user_id": [f"u{u}" for u in range(6)], "age_band": "25-34", "gender": "F",
                          "city": "Xi'an", "spending_tier": "mid"})
    history = shown[shown.click > 0][["user_id", "item_id", "timestamp"]].assign(behavior="click")
    return pack(shown, history, users, cat, cfg, text_encoder=OneHotText())


def test_block_causal_mask_layout():
    m = block_causal_mask(n_prefix=2, n_requests=2, per_request=2)
    assert m.tolist() == [[True, True, False, False, False, False], [True, True, False, False, False, False],
                          [True, True, True, True, False, False], [True, True, True, True, False, False],
                          [True, True, True, True, True, True], [True, True, True, True, True, True]]


def test_a_later_request_never_leaks_into_an_earlier_one():
    cat = _catalogue()
    cfg = RankerConfig(d_model=16, n_heads=2, n_layers=2, history=4, requests=3, dropout=0.0)
    data = _tiny_windows(cat, cfg)
    model = build("unified", cfg, cat, {"age_band": 7, "gender": 4, "spending_tier": 4, "city": 3}, 4, text_dim=8)
    batch = data.batch([0, 1])
    with torch.no_grad():
        base = model(batch)
        changed = {k: v.clone() for k, v in batch.items()}
        changed["candidates"][:, 2] = torch.flip(changed["candidates"][:, 2], [1])  # request 3's list ...
        changed["scenario"][:, 2] = 4  # ... and its context
        changed["trigger"][:, 2] = 5
        after = model(changed)
    assert torch.allclose(base[:, :2], after[:, :2], atol=1e-6)  # requests 1 and 2 are untouched
    assert not torch.allclose(base[:, 2], after[:, 2])  # request 3 itself changed
    with torch.no_grad():  # and an earlier request does reach a later one
        earlier = {k: v.clone() for k, v in batch.items()}
        earlier["scenario"][:, 0] = 4
        assert not torch.allclose(model(earlier)[:, 2], base[:, 2])


def test_packing_keeps_time_order_labels_and_the_held_out_tail():
    cat = _catalogue()
    cfg = RankerConfig(history=4, requests=3, test_fraction=0.2)
    data = _tiny_windows(cat, cfg)
    t = data.tensors
    assert len(data) == 12 and t["candidates"].shape == (12, 3, 4)  # 6 users x 5 requests in windows of 3
    assert t["request_mask"].sum() == 30 and t["has_text"].sum() == 12  # the search requests carry the query
    assert t["labels"][..., 0].sum() == 30  # one click per request
    # the held-out requests are the latest ones (the last 20 % of request time)
    times = np.sort(np.unique([u + 10 * r for u in range(6) for r in range(5)]))
    assert t["is_test"].sum() == int((times >= np.quantile(times, 0.8)).sum())
    assert not (t["history"][0] != cat.pad).any()  # the first window has no earlier interactions


def test_auc_and_gauc_known_answers():
    assert auc(np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.4, 0.3])) == pytest.approx(0.75)
    assert auc(np.array([0, 1, 1]), np.array([0.5, 0.5, 0.5])) == pytest.approx(0.5)  # ties share ranks
    assert auc(np.array([1, 1]), np.array([0.1, 0.2])) is None


def test_sampled_negatives_without_impressions():
    splits = pd.DataFrame({"user_id": ["u", "u"], "item_id": ["i01", "i02"], "behavior": ["purchase", "click"],
                           "timestamp": pd.to_datetime(["2025-01-01", "2025-01-02"]), "scenario": "homepage",
                           "trigger_item_id": None, "query": None, "pos": [0, 1]})
    shown = requests_from_interactions(splits, _catalogue().item_ids, negatives=3, seed=0)
    assert len(shown) == 8 and shown.groupby("request_id").click.sum().tolist() == [1.0, 1.0]
    first = shown[shown.request_id == "u-0"]
    assert first[first.item_id == "i01"][["click", "cart", "purchase"]].values.tolist() == [[1.0, 1.0, 1.0]]


@pytest.mark.slow
def test_unified_ranker_learns_from_the_shops_impressions(shop):
    import pyarrow.parquet as pq

    from oxy_dagster.ranking.pipeline import build_rankers, load_ranker

    imp = pq.read_table(shop.table("impressions")).to_pandas()
    events = pq.read_table(shop.table("events"), columns=["user_id", "item_id", "behavior", "request_id"]).to_pandas()
    labelled = requests_from_impressions(imp, events)
    per_request = labelled.groupby("request_id").click.sum()
    assert len(imp) > 10_000 and per_request.max() == 1 and per_request.mean() > 0.95  # one click per list
    result = build_rankers(shop, "V1", RankerConfig(epochs=3.0, requests=6), text_encoder=None,
                           baseline_scenarios=("homepage",))
    assert result["source"] == "impressions"
    clicks = result["unified"]["homepage"]["click"]
    # the shown item the user clicked is ranked above the distractors far more often than chance (0.5): the
    # ~540 held-out homepage lists with one click each give an AUC standard error of about 0.013
    assert clicks["auc"] > 0.6 and clicks["gauc"] > 0.6, clicks
    assert set(result["per_scenario"]) == {"homepage"} and set(result["unified"]) == set(SCENARIOS)
    assert result["per_scenario"]["homepage"]["click"]["auc"] > 0.55  # the baseline learns too
    model, meta = load_ranker(shop, "V1")
    assert meta["source"] == "impressions" and meta["sid_version"] == "V1"


def test_learning_rate_schedule_is_defined_for_any_number_of_steps():
    from oxy_dagster.ranking.train import _warmup_cosine

    assert _warmup_cosine(1)(0) == 1.0  # a single step trains at the full rate (OneCycleLR divided by zero here)
    f = _warmup_cosine(100)
    assert [round(f(s), 3) for s in (0, 9, 10, 55, 100)] == [0.1, 1.0, 1.0, 0.5, 0.0]
