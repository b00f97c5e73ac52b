"""The policy objectives on hand-computed cases: gate value and gradient weight, the threshold split, clipping."""

import math

import pytest
import torch

from oxy_dagster.rl.losses import gate_weight, group_advantages, policy_loss, soft_gate


def _sigmoid(x):
    return 1 / (1 + math.exp(-x))


def test_soft_gate_value_and_gradient_weight():
    tau = torch.tensor(2.0)
    # at ratio 1: f = sigmoid(0) * 4 / tau = 2 / tau, and the gradient weight is exactly 1 (seed eq. 7)
    assert soft_gate(torch.tensor(1.0), tau).item() == pytest.approx(1.0)
    assert gate_weight(torch.tensor(1.0), tau).item() == pytest.approx(1.0)
    # away from 1 the weight decays symmetrically: 4 s (1 - s) with s = sigmoid(tau (r - 1))
    for r in (0.5, 1.5, 3.0):
        s = _sigmoid(2.0 * (r - 1))
        assert gate_weight(torch.tensor(r), tau).item() == pytest.approx(4 * s * (1 - s), rel=1e-5)
        assert soft_gate(torch.tensor(r), tau).item() == pytest.approx(s * 4 / 2.0, rel=1e-5)
    assert gate_weight(torch.tensor(1.5), tau).item() == pytest.approx(gate_weight(torch.tensor(0.5), tau).item())
    # autograd agrees with the closed form, and a larger tau decays faster
    r = torch.tensor(1.4, requires_grad=True)
    soft_gate(r, tau).backward()
    assert r.grad.item() == pytest.approx(gate_weight(torch.tensor(1.4), tau).item())
    assert gate_weight(torch.tensor(1.4), torch.tensor(4.0)) < gate_weight(torch.tensor(1.4), torch.tensor(2.0))


def test_group_advantages_are_normalised_within_each_group():
    adv = group_advantages(torch.tensor([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]))
    assert adv[0].tolist() == pytest.approx([-1.2247, 0.0, 1.2247], abs=1e-3)  # (r - 2) / sqrt(2/3)
    assert adv[1].tolist() == [0.0, 0.0, 0.0]  # a group with equal rewards teaches nothing


def _one(logp_new, logp_old):
    return torch.tensor([[[logp_new]]]), torch.tensor([[[logp_old]]])


def test_sa_gcpo_splits_by_the_target_reward_and_uses_its_temperatures():
    # two items, sequence length 1, ratio 1 (new == old): loss = -mean(f(1) * A) with f(1) = 2 / tau
    logp = torch.zeros(1, 2, 1)
    adv = torch.tensor([[1.0, -1.0]])
    pos = torch.tensor([[True, False]])
    loss, stats = policy_loss("sa_gcpo", logp, logp, adv, positive=pos, tau_pos=1.0, tau_neg=2.0)
    assert loss.item() == pytest.approx(-(2 / 1.0 * 1.0 + 2 / 2.0 * -1.0) / 2)
    assert stats["positive_frac"] == 0.5 and stats["gated_frac"] == 0.0
    # the split is by reward >= target reward, not by the sign of the advantage: the same advantages with the
    # positive set flipped use the other temperatures
    flipped, _ = policy_loss("sa_gcpo", logp, logp, adv, positive=~pos, tau_pos=1.0, tau_neg=2.0)
    assert flipped.item() == pytest.approx(-(2 / 2.0 * 1.0 + 2 / 1.0 * -1.0) / 2)
    with pytest.raises(ValueError, match="positive/negative split"):
        policy_loss("sa_gcpo", logp, logp, adv)


def test_sa_gcpo_gradient_is_gated_far_from_ratio_one():
    old = torch.zeros(1, 1, 2)
    adv = torch.tensor([[1.0]])
    grads = []
    for shift in (0.0, 2.0):  # sequence ratio 1 and e^2
        new = torch.full((1, 1, 2), shift, requires_grad=True)
        loss, _ = policy_loss("sa_gcpo", new, old, adv, positive=torch.tensor([[True]]), tau_pos=1.0)
        loss.backward()
        grads.append(new.grad.abs().sum().item())
    s = math.exp(2.0)
    w = 4 * _sigmoid(s - 1) * (1 - _sigmoid(s - 1))
    # d(-f(s))/d(mean logp) = f'(s) * s; at s = 1 that is 1 (split over 2 tokens: 0.5 each)
    assert grads[0] == pytest.approx(1.0) and grads[1] == pytest.approx(w * s, rel=1e-4)


def test_gspo_clips_the_sequence_ratio_and_grpo_each_token():
    adv = torch.tensor([[1.0]])
    old = torch.zeros(1, 1, 2)
    new = torch.tensor([[[0.5, 0.5]]])  # sequence ratio e^0.5 = 1.65 > 1.2: positive advantage is clipped
    loss, stats = policy_loss("gspo", new, old, adv, clip=0.2)
    assert loss.item() == pytest.approx(-1.2) and stats["clipped_frac"] == 1.0
    neg = policy_loss("gspo", new, old, -adv, clip=0.2)[0]  # negative advantage: min keeps the unclipped ratio
    assert neg.item() == pytest.approx(math.exp(0.5))
    mixed = torch.tensor([[[0.5, 0.0]]])  # GRPO: token ratios e^0.5 (clipped to 1.2) and 1 (kept)
    loss, stats = policy_loss("grpo", mixed, old, adv, clip=0.2)
    assert loss.item() == pytest.approx(-(1.2 + 1.0) / 2) and stats["clipped_frac"] == 0.5
    with pytest.raises(ValueError, match="objective must be one of"):
        policy_loss("ppo", new, old, adv)
