"""The three policy objectives over groups of generated items, behind one switch (``RLConfig.objective``).

Notation: a sample (request) x, a group of G items y_1..y_G drawn from the behaviour policy pi_old, each item
a sequence of L code tokens y_{i,1..L}; rewards R_i and the target (really interacted) item's reward R*.

Group-normalised advantage (seed eq. 9):   A_i = (R_i - mean_j R_j) / (std_j R_j + eps)
Token ratio:      r_{i,t} = pi_theta(y_{i,t} | x, y_{i,<t}) / pi_old(y_{i,t} | x, y_{i,<t})
Sequence ratio:   s_i = (pi_theta(y_i | x) / pi_old(y_i | x)) ^ (1/L) = exp(mean_t log r_{i,t})   (GSPO)

GRPO (token level, clipped):   J = 1/G sum_i 1/L sum_t min(r_{i,t} A_i, clip(r_{i,t}, 1-e, 1+e) A_i)
GSPO (sequence level):         J = 1/G sum_i min(s_i A_i, clip(s_i, 1-e, 1+e) A_i)
SA-GCPO (seed eq. 4-8; the soft gate of SAPO, Gao et al. 2025, on GSPO's sequence ratio since an SID is
one item):
    J = 1/G sum_i f_i(s_i) A_i,   f_i(s) = sigmoid(tau_i (s - 1)) * 4 / tau_i
    tau_i = tau_pos if R_i >= R*  (the item is at least as good as what the user really took) else tau_neg
The gate's gradient weight  d f_i / d s = 4 sigmoid(tau_i (s-1)) (1 - sigmoid(tau_i (s-1)))  is 1 at s = 1 and
decays smoothly away from it (a soft trust region, seed eq. 7); no hard clip. Positives and negatives are
split by the real-feedback threshold R*, not by the sign of A_i.

Each returns the loss (-J, to minimise) and diagnostics: the fraction clipped (GRPO/GSPO: tokens/items
whose ratio left the band with an advantage the clip removes) or gated (SA-GCPO: gradient weight < 0.5).
"""

from __future__ import annotations

import torch

OBJECTIVES = ("grpo", "gspo", "sa_gcpo")


def group_advantages(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(B, G) rewards -> group-normalised advantages (seed eq. 9)."""
    return (rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True, unbiased=False) + eps)


def soft_gate(ratio: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """f(s) = sigmoid(tau (s - 1)) * 4 / tau (seed eq. 6)."""
    return torch.sigmoid(tau * (ratio - 1)) * 4 / tau


def gate_weight(ratio: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """d f / d s = 4 sigmoid(tau (s-1)) (1 - sigmoid(tau (s-1))) (seed eq. 7): 1 at s = 1."""
    p = torch.sigmoid(tau * (ratio - 1))
    return 4 * p * (1 - p)


def policy_loss(objective: str, logp: torch.Tensor, logp_old: torch.Tensor, adv: torch.Tensor,
                positive: torch.Tensor | None = None, valid: torch.Tensor | None = None, clip: float = 0.2,
                tau_pos: float = 1.0, tau_neg: float = 1.05) -> tuple[torch.Tensor, dict]:
    """``logp`` / ``logp_old``: (B, G, L) token log-probabilities under the current and behaviour policies;
    ``adv``: (B, G); ``positive``: (B, G) bool (SA-GCPO: R_i >= R*); ``valid``: (B, G) items that count."""
    valid = torch.ones_like(adv, dtype=torch.bool) if valid is None else valid
    w = valid.float()
    n = w.sum().clamp(min=1)
    if objective == "grpo":
        r = torch.exp(logp - logp_old)  # (B, G, L)
        a = adv[..., None]
        obj = torch.minimum(r * a, r.clamp(1 - clip, 1 + clip) * a).mean(-1)
        clipped = (r * a) > (r.clamp(1 - clip, 1 + clip) * a)  # the min took the clipped term
        stats = {"clipped_frac": float((clipped.float().mean(-1) * w).sum() / n)}
    elif objective == "gspo":
        s = torch.exp((logp - logp_old).mean(-1))  # (B, G)
        obj = torch.minimum(s * adv, s.clamp(1 - clip, 1 + clip) * adv)
        clipped = (s * adv) > (s.clamp(1 - clip, 1 + clip) * adv)
        stats = {"clipped_frac": float((clipped.float() * w).sum() / n),
                 "ratio_mean": float((s.detach() * w).sum() / n)}
    elif objective == "sa_gcpo":
        if positive is None:
            raise ValueError("sa_gcpo needs the positive/negative split (reward >= the target item's reward)")
        s = torch.exp((logp - logp_old).mean(-1))
        tau = torch.where(positive, torch.tensor(tau_pos), torch.tensor(tau_neg))
        obj = soft_gate(s, tau) * adv
        gated = gate_weight(s.detach(), tau) < 0.5
        stats = {"gated_frac": float((gated.float() * w).sum() / n), "ratio_mean": float((s.detach() * w).sum() / n),
                 "positive_frac": float((positive.float() * w).sum() / n)}
    else:
        raise ValueError(f"objective must be one of {OBJECTIVES}, not {objective!r}")
    return -(obj * w).sum() / n, stats
