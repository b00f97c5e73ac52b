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
