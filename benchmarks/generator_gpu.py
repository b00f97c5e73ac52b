"""GPU benchmark of the generator's training step: samples per second in float32 and in bf16 autocast, per size
preset, on Beauty-shaped batches (12,101 items, codes 256 x 256 x 256 + a collision code, 20-item histories).

The model is the one ``pretrained_checkpoint`` trains (``Generator``), the step the plain engine's own
(``TorchEngine``: forward, next-token loss with Q2I, backward, gradient-norm clip, AdamW, LR schedule); batches are
random but valid, so the figures are speed only. Each preset and precision is timed over ``--steps`` steps after
``--warmup`` with CUDA synchronisation. Refuses to run without a GPU unless ``--device cpu`` (a smoke run, recorded
under no name). Usage on a GPU machine: ``python -m benchmarks.generator_gpu`` ->
``benchmarks/results/generator_gpu.json``.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from oxy_dagster.model.config import TrainConfig, preset
from oxy_dagster.model.engine import TorchEngine
from oxy_dagster.model.generator import Generator

N_ITEMS, HISTORY, LONG = 12_101, 20, 12


def beauty_shaped(size: str, seed: int = 0) -> Generator:
    rng = np.random.default_rng(seed)
    codes = rng.permutation(np.unique(rng.integers(0, 256, (N_ITEMS * 2, 3)), axis=0))[:N_ITEMS]
    codes = np.concatenate([codes, np.zeros((len(codes), 1), np.int64)], 1)
    cfg = preset(size, code_vocab=(256, 256, 256, 8), n_cate=200, n_brand=2000)
    torch.manual_seed(seed)
    n = len(codes)
    return Generator(cfg, torch.from_numpy(codes), torch.arange(n) % 199 + 1, torch.arange(n) % 1999 + 1,
                     torch.randn(n, cfg.text_dim))


def batch(model: Generator, b: int, g: torch.Generator) -> dict:
    n, cfg = model.pad_item, model.cfg
    return dict(short_items=torch.randint(0, n, (b, HISTORY), generator=g),
                short_behaviors=torch.randint(1, 4, (b, HISTORY), generator=g),
                long_items=torch.randint(0, n, (b, LONG), generator=g),
                scenario=torch.zeros(b, dtype=torch.long), trigger=torch.full((b,), n),
                has_reasoning=torch.zeros(b, dtype=torch.bool), reasoning=torch.randn(b, cfg.text_dim, generator=g),
                target=torch.randint(0, n, (b,), generator=g), weight=torch.ones(b),
                **{f"profile_{k}": torch.randint(0, v, (b,), generator=g) for k, v in cfg.profile_vocab.items()})


def engine_for(model: Generator, bf16: bool, lr: float) -> TorchEngine:
    """The plain engine ``pretrained_checkpoint`` trains with (AdamW, warmup + cosine LR, gradient-norm clip), the
    forward under bf16 autocast or not."""
    return TorchEngine(model, TrainConfig(engine="torch", lr=lr, autocast="bf16" if bf16 else "off"))


def train_step(engine: TorchEngine, b: dict) -> torch.Tensor:
    """One optimisation step as the trainer takes it (``engine.forward``, ``engine.step``); the loss."""
    out = engine.forward(b)
    engine.step(out["loss"])
    return out["loss"].detach()


def samples_per_s(size: str, bf16: bool, batch_size: int, steps: int, warmup: int, device: torch.device) -> dict:
    with torch.device("cpu"):  # built on the host as the trainer builds it, then moved
        model = beauty_shaped(size)
        g = torch.Generator().manual_seed(1)
        batches = [batch(model, batch_size, g) for _ in range(4)]
    model = model.to(device).train()
    batches = [{k: v.to(device) for k, v in b.items()} for b in batches]
    engine = engine_for(model, bf16, lr=1e-3)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    losses = []
    for i in range(warmup + steps):
        if i == warmup:
            sync()
            t0 = time.perf_counter()
        losses.append(train_step(engine, batches[i % len(batches)]))
    sync()
    wall = time.perf_counter() - t0
    return {"params": sum(p.numel() for p in model.parameters()), "samples_per_s": round(steps * batch_size / wall, 1),
            "step_ms": round(1000 * wall / steps, 2), "loss_finite": bool(torch.stack(losses).isfinite().all())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--presets", default="small,0.1B,0.4B")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("generator_gpu needs a CUDA GPU (--device cpu for a smoke run)")
    torch.set_default_device(device)  # tensors the model creates on the fly land beside its weights
    rows = {}
    for size in args.presets.split(","):
        row = {p: samples_per_s(size, p == "bf16", args.batch_size, args.steps, args.warmup, device)
               for p in ("fp32", "bf16")}
        row["bf16_speedup"] = round(row["bf16"]["samples_per_s"] / row["fp32"]["samples_per_s"], 2)
        rows[size] = row
        print(size, row, flush=True)
    if device.type != "cuda":
        return
    from benchmarks.common import write_result

    write_result("generator_gpu", {"device": torch.cuda.get_device_name(0), "batch_size": args.batch_size,
                                   "steps": args.steps, "presets": rows, "torch": torch.__version__})


if __name__ == "__main__":
    main()
