"""The optimiser and LR schedule every training engine uses: AdamW, linear warmup, cosine decay."""

from __future__ import annotations

import math

import torch


def lr_lambda(cfg):
    """LR multiplier at ``step``: linear warmup over ``cfg.warmup`` steps, then cosine down to ``min_lr_ratio``."""
    def f(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        return _cosine(cfg, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return f


def budget_lr_lambda(cfg, trained_s):
    """The same warmup, then cosine over wall-clock time: progress is ``trained_s() / cfg.budget_s``, so the
    schedule ends when the budget does, however fast the machine steps."""
    def f(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        return _cosine(cfg, trained_s() / cfg.budget_s)
    return f


def _cosine(cfg, progress: float) -> float:
    progress = min(1.0, max(0.0, progress))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(model: torch.nn.Module, cfg, moe_groups: bool = False):
    """AdamW without weight decay on embeddings, norms and biases; warmup + cosine LR.

    ``moe_groups``: expert parameters of deepspeed.moe layers get their own groups, as DeepSpeed requires.
    """
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "emb" not in n]
    other = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "emb" not in n)]
    groups = [{"name": "decay", "params": decay, "weight_decay": cfg.weight_decay},
              {"name": "no_decay", "params": other, "weight_decay": 0.0}]
    if moe_groups:
        from deepspeed.moe.utils import split_params_into_different_moe_groups_for_optimizer

        groups = split_params_into_different_moe_groups_for_optimizer(groups)
    opt = torch.optim.AdamW(groups, lr=cfg.lr)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg))
