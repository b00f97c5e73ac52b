"""The dense head's longer horizon (``dense_ahead``): each training sample carries its user's next training targets,
never a held-out one, and the head's loss adds their mean NLL."""

import numpy as np
import pandas as pd
import pytest
import torch

from oxy_dagster.model.config import GeneratorConfig
from oxy_dagster.model.data import ahead_targets


def test_ahead_targets_are_the_users_later_training_targets_only():
    # rows deliberately out of order; user b has one training sample, user a four, then valid and test
    samples = pd.DataFrame({
        "user_id": ["a", "b", "a", "a", "a", "a", "b", "a", "b"],
        "pos": [3, 1, 1, 6, 2, 4, 2, 5, 3],
        "split": ["train", "train", "train", "test", "train", "train", "valid", "valid", "test"],
    })
    target = np.array([30, 11, 10, 60, 20, 40, 12, 50, 13])
    pad = 99
    got = ahead_targets(samples, target, pad, k=3)
    want = {0: [40, pad, pad], 1: [pad] * 3, 2: [20, 30, 40], 4: [30, 40, pad], 5: [pad] * 3}
    for row, expected in want.items():
        assert got[row].tolist() == expected, row
    held_out = samples.split.to_numpy() != "train"
    assert (got[held_out] == pad).all()  # a validation or test sample learns nothing ahead
    assert not np.isin(got, target[held_out]).any()  # and no held-out item is ever a training target


def test_dense_ahead_loss_is_the_mean_nll_of_the_later_targets(tiny):
    codes = tiny.catalogue()
    n = len(codes)
    model = tiny.model(codes, dense_weight=0.5, dense_ahead=2, q2i_weight=0.0).eval()
    batch = tiny.batch(n, b=4)
    batch["weight"] = torch.tensor([1.0, 2.0, 1.0, 1.0])
    batch["ahead"] = torch.tensor([[1, 2, 3], [4, n, n], [n, n, n], [5, 6, 7]])  # the third column is beyond N = 2
    out = model(batch)
    instr, query = model.instruction(batch)
    memory, mask, _ = model.encode(batch, query)
    h, _ = model.decode(model.prefix(instr), memory, mask)
    logp = model.dense_logp(h[:, -1])
    terms = [(-logp[0, 1], 1.0), (-logp[0, 2], 1.0), (-logp[1, 4], 2.0), (-logp[3, 5], 1.0), (-logp[3, 6], 1.0)]
    want = sum(v * w for v, w in terms) / sum(w for _, w in terms)
    assert torch.allclose(out["dense_ahead"], want, atol=1e-5)
    assert torch.allclose(out["loss"], out["ntp"] + 0.5 * (out["dense"] + out["dense_ahead"])
                          + model.cfg.moe_balance_weight * out["balance"], atol=1e-5)
    assert "dense_ahead" not in tiny.model(codes, dense_weight=0.5, q2i_weight=0.0).eval()(batch)  # off by default


def test_dense_ahead_beyond_what_samples_carry_is_refused():
    with pytest.raises(ValueError, match="dense_ahead 4"):
        GeneratorConfig(dense_ahead=4)
