"""Atomic, pickle-free checkpoints: weights and optimizer tensors in safetensors, the rest in JSON.

A checkpoint is a directory ``step-<n>/`` with ``model.safetensors``,
``optimizer.safetensors`` (every tensor of the optimizer state and the torch RNG
state), ``state.json`` (step, scheduler state, param groups, config, the SID
fingerprint) and, when the run averages its weights, ``average.safetensors``
(``averaging.py``). It is written to a temporary directory and renamed, and
``latest`` is updated last, so a killed run never leaves a half checkpoint
where resume would look.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..io import atomic_dir, write_text
from .averaging import AVERAGE_FILE


def save_checkpoint(root: str | Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler, extra: dict, keep: int = 2, averaged: dict | None = None) -> Path:
    root = Path(root)
    final = root / f"step-{step:08d}"
    opt = optimizer.state_dict()
    tensors = {"rng.torch": torch.get_rng_state()}
    scalars = {}
    for pid, st in opt["state"].items():
        for name, value in st.items():
            if torch.is_tensor(value):
                tensors[f"state.{pid}.{name}"] = value.contiguous()
            else:
                scalars[f"{pid}.{name}"] = value
    state = {"step": step, "param_groups": opt["param_groups"], "scalars": scalars,
             "scheduler": scheduler.state_dict() if scheduler is not None else None, **extra}
    with atomic_dir(final) as tmp:  # the whole directory appears at once, or not at all
        tmp.mkdir()
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        if averaged is not None:
            save_file(averaged, str(tmp / AVERAGE_FILE))
        (tmp / "state.json").write_text(json.dumps(state, default=str))
    write_latest(root, final, keep)
    return final


def write_latest(root: Path, final: Path, keep: int = 2) -> None:
    """Point ``latest`` at a complete checkpoint (atomically), then drop all but the newest ``keep``."""
    write_text(root / "latest", final.name)
    for old in sorted(root.glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(root: str | Path) -> Path | None:
    root = Path(root)
    pointer = root / "latest"
    if not pointer.exists():
        return None
    path = root / pointer.read_text().strip()
    return path if (path / "state.json").exists() else None


def load_checkpoint(path: str | Path, model: torch.nn.Module, optimizer=None, scheduler=None) -> dict:
    path = Path(path)
    state = json.loads((path / "state.json").read_text())
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    if optimizer is not None:
        tensors = load_file(str(path / "optimizer.safetensors"))
        opt_state: dict = {}
        for key, value in tensors.items():
            if key.startswith("state."):
                _, pid, name = key.split(".", 2)
                opt_state.setdefault(int(pid), {})[name] = value
        for key, value in state["scalars"].items():
            pid, name = key.split(".", 1)
            opt_state.setdefault(int(pid), {})[name] = value
        optimizer.load_state_dict({"state": opt_state, "param_groups": state["param_groups"]})
        torch.set_rng_state(tensors["rng.torch"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    return state
