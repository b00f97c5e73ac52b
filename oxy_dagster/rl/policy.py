"""The generator as a policy: token log-probabilities of given items, the RL objective module, the export.

``PolicyObjective`` wraps the generator so the training engines (plain PyTorch or DeepSpeed ZeRO) run the
RL update exactly as they run pre-training: ``forward(batch)`` returns ``{"loss", ...}``; its state dict is
the generator's under ``policy.``. ``export_policy`` writes the trained generator in the layout every
evaluator and the deployed-model bundle read (``<dir>/checkpoints/step-<n>/model.safetensors`` +
``state.json`` with the model config and the SID fingerprint).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from ..io import atomic_dir, write_json, write_safetensors
from ..model.checkpoint import write_latest
from ..model.generator import Generator
from .losses import policy_loss


def token_logprobs(model: Generator, batch: dict, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, G, L) log-probabilities of every code token of ``items`` (B, G) item rows (invalid rows -> the padding
    item; mask them out) by teacher forcing, and the (B, G, L) entropies of the distributions they came from."""
    instr, query = model.instruction(batch)
    memory, mask, _ = model.encode(batch, query)
    prefix = model.prefix(instr)
    n, g = items.shape
    rep = lambda t: t.repeat_interleave(g, 0)  # noqa: E731
    codes = model.item_codes[items.clamp(min=0)].flatten(0, 1)  # (B*G, L)
    levels = codes.shape[1]
    toks = torch.stack([model.code_token(i, codes[:, i]) for i in range(levels - 1)], 1)
    h, _ = model.decode(torch.cat([rep(prefix), toks], 1), rep(memory), rep(mask))
    h = h[:, prefix.shape[1] - 1:]
    logp, ent = [], []
    for i in range(levels):
        lp = torch.log_softmax(model.heads[i](h[:, i]).float(), -1)
        logp.append(lp.gather(1, codes[:, i:i + 1]).squeeze(1))
        ent.append(-(lp.exp() * lp).sum(-1))
    return torch.stack(logp, 1).view(n, g, levels), torch.stack(ent, 1).view(n, g, levels)


class PolicyObjective(nn.Module):
    """The RL loss of the wrapped generator for one batch of samples with their rollouts (``rl_*`` tensors)."""

    def __init__(self, policy: Generator, objective: str, clip: float, tau_pos: float, tau_neg: float,
                 kl_weight: float, sft_weight: float):
        super().__init__()
        self.policy = policy
        self.objective, self.clip, self.tau_pos, self.tau_neg = objective, clip, tau_pos, tau_neg
        self.kl_weight, self.sft_weight = kl_weight, sft_weight

    def forward(self, batch: dict) -> dict:
        items, valid = batch["rl_items"], batch["rl_valid"]
        logp, entropy = token_logprobs(self.policy, batch, items)
        loss, stats = policy_loss(self.objective, logp, batch["rl_logp_old"], batch["rl_adv"],
                                  positive=batch["rl_positive"], valid=valid, clip=self.clip, tau_pos=self.tau_pos,
                                  tau_neg=self.tau_neg)
        w = valid.float()[..., None].expand_as(logp)
        out = {"policy_loss": loss.detach(), "entropy": (entropy * w).sum() / w.sum().clamp(min=1)}
        if self.kl_weight > 0:  # k3 estimator of KL(pi_theta || pi_ref) per token (always >= 0)
            d = batch["rl_logp_ref"] - logp
            kl = ((torch.exp(d) - d - 1) * w).sum() / w.sum().clamp(min=1)
            loss = loss + self.kl_weight * kl
            out["kl"] = kl.detach()
        if self.sft_weight > 0:  # next-token loss on the real samples' target items, as in pre-training
            real = batch["rl_real"]
            if real.any():
                sft = self.policy({k: v[real] for k, v in batch.items() if not k.startswith("rl_")})["ntp"]
                loss = loss + self.sft_weight * sft
                out["sft"] = sft.detach()
        out["loss"] = loss
        out.update({k: torch.tensor(v) for k, v in stats.items()})
        return out


def export_policy(out_dir: str | Path, policy: Generator, step: int, extra: dict) -> Path:
    """The trained generator as ``<out_dir>/checkpoints/step-<n>`` (weights + state.json), ``latest`` updated."""
    root = Path(out_dir) / "checkpoints"
    final = root / f"step-{step:08d}"
    with atomic_dir(final) as tmp:
        tmp.mkdir()
        write_safetensors(tmp / "model.safetensors", policy.state_dict())
        write_json(tmp / "state.json", {"step": step, **extra}, indent=None)
    write_latest(root, final)
    return final
