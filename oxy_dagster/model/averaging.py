"""An exponential moving average of the generator's weights (``TrainConfig.ema_decay``).

The trainer updates the average after every optimisation step and writes it into each checkpoint as
``average.safetensors`` beside the raw ``model.safetensors`` (the raw weights are what a resumed run keeps
training; the average is what evaluation, serving and post-training read). Early steps average with a
shorter horizon, ``min(decay, (1 + t) / (10 + t))``, so the initial random weights fade fast instead of
lingering for ``1 / (1 - decay)`` steps.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

AVERAGE_FILE = "average.safetensors"


class WeightAverage:
    """fp32 shadow copies of a module's parameters (buffers are not averaged: the live ones are kept)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {decay}")
        self.decay, self.updates = decay, 0
        self.shadow = {name: p.detach().float().clone() for name, p in model.named_parameters()}
        if any(p.numel() == 0 for p in self.shadow.values()):
            raise ValueError("ema_decay needs every weight on this process: ZeRO-3 partitions them (use stage 0-2)")

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, p in model.named_parameters():
            self.shadow[name].lerp_(p.detach().float(), 1 - d)

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module) -> None:
        for name, p in model.named_parameters():
            p.copy_(self.shadow[name].to(p.dtype))

    def tensors(self) -> dict[str, torch.Tensor]:
        """What a checkpoint stores: the shadows, plus the update count (so a resumed run keeps the warm-up)."""
        return {**{k: v.detach().cpu().contiguous() for k, v in self.shadow.items()},
                "__updates__": torch.tensor([self.updates], dtype=torch.int64)}

    def restore(self, ckpt: Path) -> bool:
        """Take the average saved in checkpoint ``ckpt``; False (the average restarts from the resumed weights)
        where the checkpoint has none, e.g. one written before averaging was switched on."""
        saved = _saved_average(ckpt, self.shadow)
        if saved is None:
            return False
        self.updates = int(saved.pop("__updates__")[0])
        self.shadow = {k: saved[k].float().to(v.device) for k, v in self.shadow.items()}
        return True


def _saved_average(ckpt: Path, names) -> dict[str, torch.Tensor] | None:
    """Checkpoint ``ckpt``'s average (with its update count), checked to hold exactly the weights ``names``; None
    where the checkpoint was trained without averaging."""
    path = Path(ckpt) / AVERAGE_FILE
    if not path.exists():
        return None
    saved = load_file(str(path))
    differ = sorted((set(saved) - {"__updates__"}) ^ set(names))
    if differ:
        raise ValueError(f"{path} does not match the model's weights (e.g. {differ[:3]}): written by another model")
    return saved


def load_average(ckpt: Path, model: torch.nn.Module) -> bool:
    """Put checkpoint ``ckpt``'s averaged weights into ``model`` (after its raw weights were loaded); False where
    the checkpoint was trained without averaging."""
    names = dict(model.named_parameters())
    saved = _saved_average(ckpt, names)
    if saved is None:
        return False
    with torch.no_grad():
        for name, p in names.items():
            p.copy_(saved[name].to(p.dtype))
    return True
