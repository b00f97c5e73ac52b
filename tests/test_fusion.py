"""Q-Former fusion encoder and in-batch InfoNCE."""

import numpy as np
import pandas as pd
import torch

from oxy_dagster.sid.contrastive import ItemInputs, TrainConfig, embed_items, info_nce, train_fusion
from oxy_dagster.sid.features import structured_features
from oxy_dagster.sid.fusion import FusionConfig, FusionEncoder


def _items(n=64):
    rng = np.random.default_rng(0)
    cats = [f"L1{i % 2} > L2{i % 4} > L3{i % 8}" for i in range(n)]
    return pd.DataFrame({"item_id": [f"i{i}" for i in range(n)], "category_path": cats,
                         "brand": [f"b{i % 5}" if i % 7 else None for i in range(n)],
                         "price": rng.uniform(1, 100, n)})


def test_structured_features_ids():
    f = structured_features(_items())
    assert f.cate.shape == (64, 3) and f.cate.min() >= 1  # every level known
    assert (f.brand == 0).sum() == 10  # missing brands -> 0
    assert set(np.unique(f.price)) == set(range(1, 11))  # ten quantile price bands
    assert f.vocab_sizes["cate3"] == 9


def test_qformer_output_shape_norm_and_modalities():
    f = structured_features(_items())
    for kind, image_dim in (("qformer", 0), ("qformer", 16), ("mlp", 0)):
        torch.manual_seed(0)
        m = FusionEncoder(FusionConfig(kind=kind, text_dim=8, image_dim=image_dim, d_model=32, out_dim=24),
                          f.vocab_sizes).eval()
        inputs = ItemInputs(torch.randn(64, 8), torch.randn(64, 16) if image_dim else None, f)
        out = embed_items(m, inputs)
        assert out.shape == (64, 24)
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # the structured branch matters: same text, different category -> different vectors
    m = FusionEncoder(FusionConfig(text_dim=8, d_model=32), f.vocab_sizes).eval()
    b = ItemInputs(torch.zeros(64, 8), None, f).batch(np.array([0, 1]))
    with torch.no_grad():
        y = m(**b)
    assert not torch.allclose(y[0], y[1])


def test_info_nce_masks_duplicate_positives():
    a = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    b = a.clone()
    b[2] = b[1]  # item 1 twice in the batch
    plain = info_nce(a, b, 0.1)
    masked = info_nce(a, b, 0.1, a_ids=[10, 11, 12, 13], b_ids=[20, 21, 21, 23])
    assert masked < plain
    assert torch.isfinite(masked)


def test_contrastive_training_pulls_pairs_together():
    f = structured_features(_items())
    torch.manual_seed(0)
    text = torch.nn.functional.normalize(torch.randn(64, 8), dim=-1)
    inputs = ItemInputs(text, None, f)
    pairs = np.array([[i, i ^ 1] for i in range(64)])  # partners 0-1, 2-3, ...
    model = FusionEncoder(FusionConfig(text_dim=8, d_model=32, out_dim=16, dropout=0.0), f.vocab_sizes)
    before = embed_items(model, inputs)
    model, _, losses = train_fusion(model, inputs, {"swing": pairs},
                                    TrainConfig(sources=("swing",), epochs=60, batch_size=32, lr=3e-3))
    after = embed_items(model, inputs)
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    pos = lambda e: np.mean([e[i] @ e[i ^ 1] for i in range(64)])  # noqa: E731
    rand = lambda e: np.mean([e[i] @ e[(i + 17) % 64] for i in range(64)])  # noqa: E731
    assert pos(after) - rand(after) > pos(before) - rand(before) + 0.2
