"""Training throughput without changing the maths: padding columns are not computed, and length-grouped
batches cover every sample once per epoch, reproducibly, with less padding per batch."""

import numpy as np
import torch

from oxy_dagster.model.train import LengthGroupedOrder, batch_indices


def test_a_row_scores_the_same_alone_and_beside_longer_histories(tiny):
    codes = tiny.catalogue()
    model = tiny.model(codes, q2i_weight=0.0, dense_weight=1.0).eval()
    pad = len(codes)
    batch = tiny.batch(len(codes), b=4)
    for r, n in enumerate([2, 5, 20, 0]):  # history lengths; the batch is as wide as its longest row
        batch["short_items"][r, :20 - n] = pad
        batch["short_behaviors"][r, :20 - n] = 0
    batch["long_items"][:2] = pad  # two users with no long history, two with one
    batch["long_items"][2:, :-1] = pad
    together = _per_row(model, batch)
    for r in range(4):
        alone = _per_row(model, {k: v[r:r + 1] for k, v in batch.items()})
        assert torch.allclose(alone, together[r:r + 1], atol=1e-5), r
    memory, mask, _ = model.encode(batch, model.instruction(batch)[1])
    assert memory.shape[1] == 1 + 20 + 1  # profile + the widest history + the one long item retrieved
    two = {k: v[:2] for k, v in batch.items()}
    short_only, _, _ = model.encode(two, model.instruction(two)[1])
    assert short_only.shape[1] == 1 + 5  # leading all-padding columns and the empty long branch dropped


def _per_row(model, batch) -> torch.Tensor:
    """Per-row next-code log-likelihood plus dense log-probability of the target: anything the encoder
    computes differently would change them."""
    instr, query = model.instruction(batch)
    memory, mask, _ = model.encode(batch, query)
    prefix = model.prefix(instr)
    codes = model.item_codes[batch["target"]]
    toks = torch.stack([model.code_token(i, codes[:, i]) for i in range(codes.shape[1] - 1)], 1)
    h, _ = model.decode(torch.cat([prefix, toks], 1), memory, mask)
    h = h[:, prefix.shape[1] - 1:]
    ll = sum(torch.log_softmax(model.heads[i](h[:, i]), -1).gather(1, codes[:, i:i + 1]).squeeze(1)
             for i in range(codes.shape[1]))
    return ll + model.dense_logp(h[:, 0]).gather(1, batch["target"][:, None]).squeeze(1)


def test_length_grouped_batches_cover_each_epoch_once_and_pad_less():
    rng = np.random.default_rng(0)
    lengths = np.minimum(rng.geometric(0.15, 5000), 20)  # many short histories, a few long: Beauty's shape
    n, bs = len(lengths), 64
    order = LengthGroupedOrder(lengths, bs, seed=3, group=16)
    for epoch in range(2):
        assert np.array_equal(np.sort(order(epoch)), np.arange(n))  # a permutation: every sample once
    assert not np.array_equal(order(0), order(1))
    steps = n // bs
    grouped = [batch_indices(n, bs, 3, s, order) for s in range(steps)]
    again = LengthGroupedOrder(lengths, bs, seed=3, group=16)
    assert all(np.array_equal(b, batch_indices(n, bs, 3, s, again)) for s, b in enumerate(grouped))  # resumable
    plain = [batch_indices(n, bs, 3, s) for s in range(steps)]
    cost = lambda batches: np.mean([lengths[b].max() for b in batches])  # noqa: E731  columns computed
    assert cost(grouped) < 0.7 * cost(plain)
    first_len = np.array([lengths[b].mean() for b in grouped[:20]])
    assert first_len.std() > 0.5  # batches of all lengths come early, not sorted over the epoch


def test_recency_factors_lean_to_each_users_latest_samples():
    from oxy_dagster.model.train import recency_factors

    users = np.array(["a", "a", "a", "b", "b", "c"])
    f = recency_factors(users, np.array([30, 10, 20, 50, 50, 90]), 1.0)
    raw = np.array([2.0, 1.0, 1.5, 1.5, 1.5, 1.5])  # a: latest / first / middle; b: a tie; c: one sample
    assert np.allclose(f, raw / raw.mean()) and abs(f.mean() - 1) < 1e-6
    assert np.allclose(recency_factors(users, np.zeros(6), 3.0), 1.0)  # every place shared: no lean
    assert np.allclose(recency_factors(users, np.arange(6), 0.0), 1.0)
    import pytest

    with pytest.raises(ValueError, match="recency_weight must be >= 0"):
        recency_factors(users, np.arange(6), -1.0)


def test_training_with_recency_weight_reweights_the_loss(tiny, tmp_path):
    """The same seed and batches: a recency lean changes the step only where a user's samples differ in time."""
    import pandas as pd

    from oxy_dagster.model.config import TrainConfig
    from oxy_dagster.model.train import train

    codes = tiny.catalogue()

    def one_step(recency: float, timestamps, name: str):
        data = tiny.data(codes, n=64)
        data.meta = data.meta.assign(user_id=[f"u{i % 8}" for i in range(64)], timestamp=timestamps)
        model = tiny.model(codes)
        train(model, data, np.arange(64), TrainConfig(steps=1, batch_size=64, warmup=1, lr=1e-2, engine="torch",
                                                      recency_weight=recency), tmp_path / name)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    ordered = np.arange(64)
    plain = one_step(0.0, ordered, "plain")
    assert not torch.allclose(one_step(3.0, ordered, "lean"), plain)
    assert torch.allclose(one_step(3.0, np.zeros(64), "ties"), plain, atol=1e-6)  # no order: weights all 1
    data = tiny.data(codes, n=8)
    data.meta = pd.DataFrame({"user_id": ["u"] * 8, "split": "train"})
    import pytest

    with pytest.raises(ValueError, match="needs the samples' timestamp"):
        train(tiny.model(codes), data, np.arange(8), TrainConfig(steps=1, batch_size=8, engine="torch",
                                                                 recency_weight=1.0), tmp_path / "none")
