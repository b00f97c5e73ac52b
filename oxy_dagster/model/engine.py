"""Training engines behind one interface: plain PyTorch, or DeepSpeed ZeRO (``zero.py``).

An engine owns the optimizer and LR schedule, runs one optimisation step per
loss, and saves / restores pickle-free checkpoints. ``rank`` / ``world`` tell the
training loop which slice of each global batch this process takes.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from .checkpoint import load_checkpoint, save_checkpoint


def lr_lambda(cfg):
    def f(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return f


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


class TorchEngine:
    """One process, fp32, the optimizer state saved per parameter."""

    rank, world = 0, 1

    def __init__(self, model: torch.nn.Module, cfg):
        self.model = model
        self.opt, self.sched = make_optimizer(model, cfg)
        self.grad_clip = cfg.grad_clip

    def forward(self, batch: dict) -> dict:
        return self.model(batch)

    def step(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.opt.step()
        self.sched.step()

    @property
    def lr(self) -> float:
        return self.sched.get_last_lr()[0]

    def save(self, root: Path, step: int, extra: dict) -> Path:
        return save_checkpoint(root, step, self.model, self.opt, self.sched, extra)

    def load(self, ckpt: Path) -> dict:
        return load_checkpoint(ckpt, self.model, self.opt, self.sched)

    def finish(self) -> None:
        """Nothing to undo: the model was trained as built."""


def make_engine(model: torch.nn.Module, cfg):
    if cfg.moe not in ("native", "deepspeed"):
        raise ValueError(f"TrainConfig.moe must be 'native' or 'deepspeed', not {cfg.moe!r}")
    if cfg.engine == "torch":
        if cfg.moe != "native":
            raise ValueError("TrainConfig.moe='deepspeed' (expert parallelism) needs engine='deepspeed'")
        return TorchEngine(model, cfg)
    if cfg.engine == "deepspeed":
        from .zero import DeepSpeedEngine

        return DeepSpeedEngine(model, cfg)
    raise ValueError(f"TrainConfig.engine must be 'torch' or 'deepspeed', not {cfg.engine!r}")
