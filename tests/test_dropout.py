"""The counter-based hash dropout (CPU) and bf16 autocast training: the mask's statistics, determinism under
torch's seed, gradients, the attention path against scaled_dot_product_attention, and a bf16 training run."""

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from oxy_dagster.model.config import TrainConfig
from oxy_dagster.model.dropout import Dropout, attention, dropout, dropout_backend, keep_mask
from oxy_dagster.model.engine import make_engine
from oxy_dagster.model.train import train


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_mask_keeps_one_minus_p_independently_of_position_and_keys(p):
    n = 1_000_000
    a = keep_mask((n,), p, (12345, 678)).float()
    b = keep_mask((n,), p, (12346, 678)).float()
    c = keep_mask((n,), p, (12345, 679)).float()
    tol = 5 * (p * (1 - p) / n) ** 0.5  # five standard errors of a Bernoulli mean
    assert abs(a.mean().item() - (1 - p)) < tol
    for other in (b, c):  # another key: an independent mask, not a shifted or equal copy
        assert abs((a * other).mean().item() - (1 - p) ** 2) < 2 * tol
    assert abs((a[1:] * a[:-1]).mean().item() - (1 - p) ** 2) < 2 * tol  # neighbours uncorrelated
    assert abs((a[1024:] * a[:-1024]).mean().item() - (1 - p) ** 2) < 2 * tol
    blocks = a[: n // 1000 * 1000].view(1000, -1).mean(1)  # no stretch of positions is favoured
    assert blocks.std().item() < 2 * (p * (1 - p) / (n // 1000)) ** 0.5


def test_torch_seed_fixes_the_masks_and_a_new_draw_changes_them():
    x = torch.randn(64, 33)
    torch.manual_seed(3)
    a, a2 = dropout(x, 0.3), dropout(x, 0.3)
    torch.manual_seed(3)
    b = dropout(x, 0.3)
    assert torch.equal(a, b) and not torch.equal(a, a2)
    kept = a != 0
    assert torch.allclose(a[kept], x[kept] / 0.7)  # inverted dropout: the kept values scaled by 1 / (1 - p)


def test_gradient_flows_through_the_kept_positions_only():
    x = torch.randn(50, 40, requires_grad=True)
    torch.manual_seed(0)
    y = dropout(x, 0.25)
    (y * 2).sum().backward()
    kept = (y != 0).float()
    assert torch.allclose(x.grad, kept * 2 / 0.75)


def test_identity_in_evaluation_and_at_zero_and_the_torch_backend():
    x = torch.randn(8, 8)
    layer = Dropout(0.5).eval()
    assert layer(x) is x and dropout(x, 0.0) is x and torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    with dropout_backend("torch"):
        torch.manual_seed(5)
        got = dropout(x, 0.5)
    torch.manual_seed(5)
    assert torch.equal(got, F.dropout(x, 0.5, True))
    with pytest.raises(ValueError, match="'hash' or 'torch'"):
        with dropout_backend("philox"):
            pass


def test_attention_with_dropout_is_sdpa_when_nothing_is_dropped_and_drops_probabilities_otherwise():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, 5 if i == 0 else 7, 4, generator=g) for i in range(3))
    mask = torch.ones(3, 1, 1, 7, dtype=torch.bool)
    mask[0, ..., 5:] = False  # padded keys
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    got = attention(q, k, v, attn_mask=mask, dropout_p=1e-12, training=True)  # the explicit path, nothing dropped
    assert torch.allclose(got, want, atol=1e-6)
    assert torch.equal(attention(q, k, v, attn_mask=mask, dropout_p=0.5, training=False), want)
    torch.manual_seed(1)
    dropped = attention(q, k, v, attn_mask=mask, dropout_p=0.5, training=True)
    assert not torch.allclose(dropped, want, atol=1e-3)
    torch.manual_seed(1)
    scores = (q @ k.transpose(-2, -1) / 2.0).masked_fill(~mask, float("-inf")).softmax(-1)
    assert torch.allclose(dropped, dropout(scores, 0.5) @ v, atol=1e-6)  # the same mask on the probabilities


def test_bf16_autocast_trains_with_float32_weights_and_is_checked(tiny, tmp_path):
    codes = tiny.catalogue()
    data = tiny.data(codes)
    rows = np.arange(len(data))
    cfg = TrainConfig(steps=12, batch_size=16, warmup=2, log_every=1, lr=3e-3, engine="torch", autocast="bf16")
    model = tiny.model(codes, dropout=0.1)
    history = train(model, data, rows, cfg, tmp_path / "bf16")
    losses = [h["loss"] for h in history]
    assert len(losses) == 12 and all(np.isfinite(losses)) and np.mean(losses[-3:]) < np.mean(losses[:3])
    assert all(p.dtype == torch.float32 for p in model.parameters())
    fixed = tiny.model(codes).eval()
    batch = data.batch(rows[:16])
    half = float(make_engine(fixed, cfg).forward(batch)["loss"])
    full = float(make_engine(fixed, replace(cfg, autocast="off")).forward(batch)["loss"])
    assert half != full and abs(half - full) < 0.05 * full  # the same model, its matmuls rounded to bf16
    with pytest.raises(ValueError, match="needs engine='torch'"):
        make_engine(tiny.model(codes), TrainConfig(engine="deepspeed", autocast="bf16"))
    with pytest.raises(ValueError, match="'off' or 'bf16'"):
        make_engine(tiny.model(codes), TrainConfig(engine="torch", autocast="fp16"))
