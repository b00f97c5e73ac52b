"""Training engines behind one small protocol, chosen by name (``TrainConfig.engine``).

An engine owns the optimizer and LR schedule, runs one optimisation step per
loss, and saves / restores pickle-free checkpoints. ``rank`` / ``world`` tell the
training loop which slice of each global batch this process takes.

* ``"torch"``: ``TorchEngine`` below, one process, plain PyTorch.
* ``"deepspeed"``: ``zero.DeepSpeedEngine``, DeepSpeed ZeRO 0-3 on any world size.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import torch

from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .optim import make_optimizer
from .zero import DeepSpeedEngine


class Engine(Protocol):
    rank: int
    world: int
    model: torch.nn.Module

    def forward(self, batch: dict) -> dict: ...
    def step(self, loss: torch.Tensor) -> None: ...
    @property
    def lr(self) -> float: ...
    def save(self, root: Path, step: int, extra: dict, averaged: dict | None = None) -> Path: ...
    def load(self, ckpt: Path) -> dict: ...
    def finish(self) -> None: ...


class TorchEngine:
    """One process, fp32 weights (the forward optionally under bf16 autocast), the optimizer state saved per
    parameter."""

    rank, world = 0, 1

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig):
        if cfg.moe != "native":
            raise ValueError("TrainConfig.moe='deepspeed' (expert parallelism) needs engine='deepspeed'")
        self.model = model
        self.opt, self.sched = make_optimizer(model, cfg)
        self.grad_clip = cfg.grad_clip
        self.bf16 = cfg.autocast == "bf16"
        self.device_type = next(model.parameters()).device.type

    def forward(self, batch: dict) -> dict:
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.bf16):
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

    def save(self, root: Path, step: int, extra: dict, averaged: dict | None = None) -> Path:
        return save_checkpoint(root, step, self.model, self.opt, self.sched, extra, averaged=averaged)

    def load(self, ckpt: Path) -> dict:
        return load_checkpoint(ckpt, self.model, self.opt, self.sched)

    def finish(self) -> None:
        """Nothing to undo: the model was trained as built."""


ENGINES: dict[str, Callable[[torch.nn.Module, TrainConfig], Engine]] = {
    "torch": TorchEngine, "deepspeed": DeepSpeedEngine}


def make_engine(model: torch.nn.Module, cfg: TrainConfig) -> Engine:
    if cfg.moe not in ("native", "deepspeed"):
        raise ValueError(f"TrainConfig.moe must be 'native' or 'deepspeed', not {cfg.moe!r}")
    if cfg.autocast not in ("off", "bf16"):
        raise ValueError(f"TrainConfig.autocast must be 'off' or 'bf16', not {cfg.autocast!r}")
    if cfg.autocast != "off" and cfg.engine != "torch":
        raise ValueError("TrainConfig.autocast='bf16' needs engine='torch' (DeepSpeed's own bf16 runs on GPU)")
    if cfg.engine not in ENGINES:
        raise ValueError(f"TrainConfig.engine must be one of {sorted(ENGINES)}, not {cfg.engine!r}")
    return ENGINES[cfg.engine](model, cfg)
