"""Command-line post-training, one rank of a launcher: ``torchrun ... -m oxy_dagster.rl.cli --spec job.json``.

``post_train`` writes the job spec (data root, SID version, output dir, the whole ``RLConfig`` as ``rl`` and
``RewardConfig`` as ``rewards``, evaluation settings) and starts the ranks; rank 0 prints one
``OXY_PROGRESS`` JSON line per RL step, evaluates, exports the policy and writes ``info.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..model.launch import progress_line
from ..paths import DataPaths
from ..rewards.service import RewardConfig
from ..settings import from_dict
from .pipeline import post_train_here
from .trainer import RLConfig


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description="Post-train the OxyRec generator (one rank of a launcher)")
    ap.add_argument("--spec", required=True, help="the JSON job spec written by rl.pipeline.post_train")
    spec = json.loads(Path(ap.parse_args(argv).spec).read_text())
    return post_train_here(DataPaths(Path(spec["root"])), spec["version"], from_dict(RLConfig, spec["rl"]),
                           Path(spec["out"]), from_dict(RewardConfig, spec["rewards"]),
                           log=lambda rec: print(progress_line(rec), flush=True), stop_at=spec.get("stop_at"),
                           eval_rows=spec["eval_rows"], eval_every=spec["eval_every"], beam=spec["beam"],
                           pretrained_dir=Path(spec["pretrained_dir"]) if spec.get("pretrained_dir") else None)


if __name__ == "__main__":
    main()
