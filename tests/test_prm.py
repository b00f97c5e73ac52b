"""Promise's process reward model: the beam follows it, it learns the target's prefixes, weight 0 changes nothing."""

import numpy as np
import torch

from oxy_dagster.model.decoding import beam_search
from oxy_dagster.model.prm import PRMConfig, ProcessRewardModel, train_prm


class OraclePRM(torch.nn.Module):
    """Knows each row's target: scores a path 10 when it is a prefix of the target's code, else 0."""

    def __init__(self, target_codes: torch.Tensor, weight: float = 100.0):
        super().__init__()
        self.target, self.cfg = target_codes, PRMConfig(weight=weight, expand=1000)

    def forward(self, memory, pad, paths):
        return 10.0 * (paths == self.target[:, None, : paths.shape[-1]]).all(-1).float()


def test_the_beam_follows_the_prm_and_weight_zero_changes_nothing(trained_tiny):
    model, codes, data, trie = trained_tiny
    batch = data.batch(np.arange(64))
    target = torch.from_numpy(codes)[batch["target"]]
    plain, plain_scores = beam_search(model, batch, trie, beam=1, topk=1)
    guided, _ = beam_search(model, batch, trie, beam=1, topk=1, prm=OraclePRM(target))
    prefix = lambda items: torch.from_numpy(codes)[items[:, 0]][:, :-1]  # noqa: E731 (every level the PRM guides)
    assert (prefix(guided) == target[:, :-1]).all()  # a greedy beam kept on the target's path at every level
    assert (prefix(plain) == target[:, :-1]).all(-1).float().mean() < 1.0  # which the generator alone is not
    same, same_scores = beam_search(model, batch, trie, beam=4, topk=4, prm=OraclePRM(target, weight=0.0))
    wide, wide_scores = beam_search(model, batch, trie, beam=4, topk=4)
    assert torch.equal(same, wide) and torch.allclose(same_scores, wide_scores)


def test_a_trained_prm_ranks_the_targets_prefix_above_sampled_ones(trained_tiny):
    model, codes, data, trie = trained_tiny
    rows = np.arange(len(data))
    losses = []
    prm = train_prm(model, data, rows, codes, PRMConfig(steps=150, batch_size=64, negatives=15), log=losses.append,
                    progress=False)
    assert isinstance(prm, ProcessRewardModel) and losses[-1]["prm_loss"] < 0.7 * losses[0]["prm_loss"]
    batch = data.batch(rows[:128])
    with torch.no_grad():
        _, query = model.instruction(batch)
        memory, pad, _ = model.encode(batch, query)
        target = torch.from_numpy(codes)[batch["target"]][:, None, :1]
        other = (target + 1) % int(codes[:, 0].max() + 1)  # another level-1 code
        paths = torch.cat([target, other], 1)
        scores = prm(memory, pad, paths)
    assert (scores[:, 0] > scores[:, 1]).float().mean() > 0.8
