"""CPU benchmark of the generator's training step with torch's dropout, the hash dropout, and the hash dropout
under bf16 autocast; and of the dropout op alone at the step's two largest shapes.

The model is the Beauty-shaped ``small`` generator of ``generator_gpu`` (12,101 items, codes 256 x 256 x 256,
20-item histories, 64 long-history items, batch 256), the step the plain engine's own (``TorchEngine``: forward,
loss, backward, gradient-norm clip, AdamW, LR schedule). The three variants are timed in interleaved rounds
(``--rounds``) so that drift on a shared machine hits each alike; each figure is the median step over its rounds.
Writes ``benchmarks/results/dropout_cpu.json`` and a bar chart, and logs both to MLflow. Usage: ``python -m
benchmarks.dropout_cpu``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from benchmarks.common import RESULTS, write_result
from benchmarks.generator_gpu import batch, beauty_shaped, engine_for, train_step
from oxy_dagster.io import save_figure
from oxy_dagster.model.dropout import dropout, dropout_backend

VARIANTS = {"torch_fp32": ("torch", False), "hash_fp32": ("hash", False), "hash_bf16": ("hash", True)}


def step_times(model, batches, backend: str, bf16: bool, steps: int) -> list[float]:
    engine = engine_for(model, bf16, lr=1e-4)
    times = []
    with dropout_backend(backend):
        for i in range(steps + 2):  # two warm-up steps
            t0 = time.perf_counter()
            loss = train_step(engine, batches[i % len(batches)])
            times.append(time.perf_counter() - t0)
            if not torch.isfinite(loss):
                raise RuntimeError(f"non-finite loss with dropout={backend} bf16={bf16}")
    return times[2:]


def op_ms(shape: tuple, backend: str, p: float, reps: int = 20) -> float:
    x = torch.randn(shape)
    with dropout_backend(backend):
        dropout(x, p)
        t0 = time.perf_counter()
        for _ in range(reps):
            dropout(x, p)
    return round(1000 * (time.perf_counter() - t0) / reps, 2)


def plot(figures: dict, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = list(VARIANTS)
    ms = [figures["step_ms"][n] for n in names]
    ax.bar(names, ms, color=["grey", "tab:blue", "tab:green"])
    for i, v in enumerate(ms):
        ax.text(i, v, f"{v:.0f} ms", ha="center", va="bottom")
    ax.set(ylabel="training step (ms, median)", title=f"generator step on {figures['threads']} CPU threads")
    fig.tight_layout()
    return save_figure(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", default="small")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per variant and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--name", default="dropout_cpu")
    args = ap.parse_args()
    torch.manual_seed(0)
    model = beauty_shaped(args.size).train()
    g = torch.Generator().manual_seed(1)
    batches = [batch(model, args.batch_size, g) for _ in range(4)]
    for b in batches:  # Beauty's samples carry 64 long-history slots (the encoder sees 1 + 20 + 64 tokens)
        b["long_items"] = torch.randint(0, model.pad_item, (args.batch_size, 64), generator=g)
    times = {n: [] for n in VARIANTS}
    for r in range(args.rounds):
        for name, (backend, bf16) in VARIANTS.items():
            times[name] += step_times(model, batches, backend, bf16, args.steps)
            print(f"round {r}: {name} {1000 * np.median(times[name]):.1f} ms/step", flush=True)
    step_ms = {n: round(1000 * float(np.median(t)), 1) for n, t in times.items()}
    d, ff, heads, tokens = model.cfg.d_model, model.cfg.d_ff, model.cfg.n_heads, 1 + 20 + 64
    shapes = {"ffn_hidden": (args.batch_size, tokens, ff), "attention_probs": (args.batch_size, heads, tokens, tokens)}
    ops = {k: {b: op_ms(s, b, model.cfg.dropout) for b in ("torch", "hash")} for k, s in shapes.items()}
    for row in ops.values():
        row["speedup"] = round(row["torch"] / row["hash"], 2)
    x = torch.randn(1_000_000)
    torch.manual_seed(0)
    kept = float((dropout(x, 0.1) != 0).float().mean())
    figures = {"threads": torch.get_num_threads(), "size": args.size, "batch_size": args.batch_size,
               "d_model": d, "step_ms": step_ms,
               "step_speedup_hash": round(step_ms["torch_fp32"] / step_ms["hash_fp32"], 2),
               "step_speedup_hash_bf16": round(step_ms["torch_fp32"] / step_ms["hash_bf16"], 2),
               "bf16_speedup": round(step_ms["hash_fp32"] / step_ms["hash_bf16"], 2),
               "op_ms": ops, "kept_fraction_p0.1": round(kept, 4), "torch": torch.__version__}
    chart = plot(figures, RESULTS / f"{args.name}.png")
    write_result(args.name, figures, params=vars(args), artifacts=[chart])
    print(figures)


if __name__ == "__main__":
    main()
