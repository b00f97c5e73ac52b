"""Benchmark: Promise's process reward model in beam search, on the validation split (issue: generator quality).

A generator is pre-trained (or an existing checkpoint reused), the PRM is trained beside it (generator frozen),
and the validation users are ranked with the same beam with and without the PRM: Recall/NDCG@10 and the
hierarchical recall per code level (does the target's level-1, level-1+2, ... prefix survive in the top 20),
and the decoding time of each. Settings are compared on validation only.

Default: the default synthetic shop (2,000 users, V1 codes) and the ``small`` generator for ``--steps``.
``--workdir`` + ``--model-dir`` reuse a materialized data root and a trained generator (e.g. Beauty's
``$OXY_HOME/bench/beauty`` and ``$OXY_HOME/bench/beauty-models/V4``).

Usage: ``python -m benchmarks.prm [--steps 600] [--beam 20] [--eval-rows 2000] [--weights 0.5,1.0] [--name prm]``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks.common import write_result
from oxy_dagster.model.config import TrainConfig
from oxy_dagster.model.evaluate import evaluate
from oxy_dagster.model.pipeline import build_pretrained, load_pretrained
from oxy_dagster.model.prm import PRMConfig, train_prm
from oxy_dagster.paths import DataPaths

KEYS = ("recall@10", "ndcg@10", "recall@20", "hier_recall@20_l1", "hier_recall@20_l2", "hier_recall@20_l3")


def synthetic_root(n_users: int) -> Path:
    from oxy_dagster.data.pipeline import run_all
    from oxy_dagster.data.sources import DatasetConfig
    from oxy_dagster.data.synthetic import SyntheticConfig
    from oxy_dagster.sid.build import build_codebook, build_item_embeddings, build_text_embeddings
    from oxy_dagster.spark import SparkConfig, get_spark, stop_spark

    root = Path(tempfile.mkdtemp(prefix="oxy-prm-"))
    run_all(get_spark(SparkConfig(master="local[2]", shuffle_partitions=4)),
            DatasetConfig(kind="synthetic", synthetic=SyntheticConfig(n_users=n_users)), root)
    stop_spark()
    paths = DataPaths(root)
    build_text_embeddings(paths)
    build_item_embeddings(paths, "V1")
    build_codebook(paths, "V1")
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--model-dir", default=None)
    ap.add_argument("--version", default="V1")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--prm-steps", type=int, default=PRMConfig.steps)
    ap.add_argument("--beam", type=int, default=20)
    ap.add_argument("--eval-rows", type=int, default=2000)
    ap.add_argument("--weights", default="0.5,1.0")
    ap.add_argument("--name", default="prm", help="results name: benchmarks/results/<name>.json (prm_beauty for "
                                                  "Beauty)")
    args = ap.parse_args()
    paths = DataPaths(Path(args.workdir) if args.workdir else synthetic_root(2000))
    model_dir = Path(args.model_dir) if args.model_dir else paths.root / "models" / "prm-base"
    if not args.model_dir:
        build_pretrained(paths, args.version, "small", TrainConfig(steps=args.steps, batch_size=128, warmup=50),
                         out_dir=model_dir)
    model, cat, data, trie = load_pretrained(paths, args.version, out_dir=model_dir)
    rows = data.split_rows("train", cat.pad)
    t0 = time.perf_counter()
    losses = []
    prm = train_prm(model, data, rows, cat.codes, PRMConfig(steps=args.prm_steps), log=losses.append)
    prm_train_s = time.perf_counter() - t0

    def scored(guide) -> dict:
        t = time.perf_counter()
        r = evaluate(model, data, trie, cat.codes, split="valid", beam=args.beam, max_rows=args.eval_rows or None,
                     prm=guide)
        return {**{k: round(r[k], 5) for k in KEYS}, "decode_s": round(time.perf_counter() - t, 1),
                "evaluated": r["evaluated"], "invalid_items": r["invalid_items"]}

    plain = scored(None)
    by_weight = {}
    for w in (float(x) for x in args.weights.split(",")):
        prm.cfg.weight = w
        by_weight[str(w)] = scored(prm)
        print(w, by_weight[str(w)], flush=True)
    best = max(by_weight, key=lambda w: by_weight[w]["recall@10"])
    figures = {"split": "valid", "beam": args.beam, "plain": plain, "with_prm": by_weight, "best_weight": float(best),
               "recall@10_ratio": round(by_weight[best]["recall@10"] / max(plain["recall@10"], 1e-9), 3),
               "decode_time_ratio": round(by_weight[best]["decode_s"] / max(plain["decode_s"], 1e-9), 2),
               "prm_train_s": round(prm_train_s, 1), "prm_loss_first_last": [losses[0]["prm_loss"],
                                                                            losses[-1]["prm_loss"]],
               "setup": {"data": str(paths.root) if args.workdir else "synthetic, 2000 users",
                         "generator": str(model_dir) if args.model_dir else f"small, {args.steps} steps",
                         "sid_version": args.version, "prm": {"steps": args.prm_steps, "negatives": PRMConfig.negatives,
                                                              "expand": PRMConfig.expand}}}
    print(json.dumps(figures, indent=1))
    write_result(args.name, figures, {"beam": args.beam, "eval_rows": args.eval_rows})


if __name__ == "__main__":
    main()
