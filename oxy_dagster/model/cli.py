"""Command-line pre-training, for launchers (``torchrun`` / ``deepspeed``) and scripts.

One CPU process, no launcher::

    python -m oxy_dagster.model.cli --root .oxy/data/synthetic --version V3 --engine deepspeed --zero-stage 2

Two processes on gloo (each takes half of every global batch)::

    OMP_NUM_THREADS=1 torchrun --nproc_per_node 2 -m oxy_dagster.model.cli --root ... --engine deepspeed

Expert parallelism for an MoE preset (each rank holds half of every layer's experts)::

    OMP_NUM_THREADS=1 torchrun --nproc_per_node 2 -m oxy_dagster.model.cli --root ... --size small-moe \
        --engine deepspeed --moe deepspeed

The data root is a materialized OxyRec work dir (samples + the SID version's
codes). Checkpoints go to ``--out`` (default ``<root>/models/pretrained-<version>``);
rank 0 writes ``info.json`` and ``history.json`` there, and prints one ``OXY_PROGRESS``
JSON line per logged step (``launch.launch`` parses them).

``--spec job.json`` takes everything from one JSON job spec instead (root, version,
size, out, the whole ``TrainConfig`` as ``train`` and generator overrides as ``model``):
that is how ``pretrained_checkpoint`` starts its ranks (``pipeline.pretrain_in_processes``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..paths import DataPaths
from ..settings import from_dict
from ..sid.versions import DEFAULT_VERSION
from .config import PRESETS, TrainConfig
from .launch import is_lead_rank, progress_line
from .pipeline import pretrain


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description="Pre-train the OxyRec generator")
    ap.add_argument("--root", default=None, help="OxyRec data root (with samples/ and sid/<version>/)")
    ap.add_argument("--version", default=DEFAULT_VERSION)
    ap.add_argument("--size", default="small", choices=sorted(PRESETS))
    ap.add_argument("--out", default=None)
    ap.add_argument("--steps", type=int, default=TrainConfig.steps)
    ap.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    ap.add_argument("--lr", type=float, default=TrainConfig.lr)
    ap.add_argument("--warmup", type=int, default=TrainConfig.warmup)
    ap.add_argument("--ckpt-every", type=int, default=TrainConfig.ckpt_every)
    ap.add_argument("--seed", type=int, default=TrainConfig.seed)
    ap.add_argument("--engine", default="deepspeed", choices=("torch", "deepspeed"))
    ap.add_argument("--zero-stage", type=int, default=TrainConfig.zero_stage, choices=(0, 1, 2, 3))
    ap.add_argument("--moe", default=TrainConfig.moe, choices=("native", "deepspeed"),
                    help="deepspeed: deepspeed.moe layers with experts split over the ranks (MoE presets)")
    ap.add_argument("--expert-parallel", type=int, default=TrainConfig.expert_parallel,
                    help="ranks that share one copy of the experts (0: all of them)")
    ap.add_argument("--stop-at", type=int, default=None, help="end early after this step's checkpoint")
    ap.add_argument("--spec", default=None, help="a JSON job spec (written by pretrain_in_processes); "
                                                 "replaces every other option")
    args = ap.parse_args(argv)
    lead = is_lead_rank()
    if args.spec:
        spec = json.loads(Path(args.spec).read_text())
        cfg = from_dict(TrainConfig, spec["train"])
        root, version, size, out, overrides = spec["root"], spec["version"], spec["size"], spec["out"], \
            spec.get("model", {})
    else:
        cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup=args.warmup,
                          ckpt_every=args.ckpt_every, seed=args.seed, engine=args.engine,
                          zero_stage=args.zero_stage, moe=args.moe, expert_parallel=args.expert_parallel, log_every=1)
        root, version, size, out, overrides = args.root, args.version, args.size, args.out, {}
    if not root:
        ap.error("--root (or --spec) is required")
    info = pretrain(DataPaths(Path(root)), version, size, cfg, log=lambda rec: print(progress_line(rec), flush=True),
                    out_dir=Path(out) if out else None, write_info=lead, stop_at=args.stop_at, **overrides)[0]
    if lead:
        print(json.dumps({k: info[k] for k in ("train_samples", "params", "steps", "final_loss")}), flush=True)
    return info


if __name__ == "__main__":
    main()
