"""Benchmark: dense candidates (``GeneratorConfig.dense_candidates``, LIGER's hybrid retrieval) on trained generators.

No training: a generator (one model directory) or the members of a ``--members`` run (several, decoded as one
ensemble) is decoded with each number of dense candidates in ``--counts`` (the dense head's best items outside the
beam join its candidates, scored by their whole code path) and each ``dense_mix`` in ``MIXES``, on a seeded sample of
validation users (history filter on, and ``plain``). The setting with the best validation Recall@10 + NDCG@10 is
chosen there; with ``--test``, every test user is then read once at that setting (``--test-own``: also at the
generators' own, which ``benchmarks/beauty.py`` read for them), so the lever's effect on test is chosen without test.
Writes benchmarks/results/<name>.json and logs it to MLflow.

Usage: ``python -m benchmarks.beauty_dense_candidates --version V --model-dirs DIR[,DIR...] [--test]``
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from benchmarks.beauty_data import add_workdir_argument, beauty_paths
from benchmarks.beauty_eval import KEYS, candidates, scored, split_rows
from benchmarks.common import write_result
from oxy_dagster.model.ensemble import GeneratorEnsemble
from oxy_dagster.model.pipeline import load_pretrained_many

MIXES = (0.5, 1.0, 2.0)


def read(model, data, trie, rows, beam: int, count: int, mixes) -> dict:
    """Figures at each mix (filtered, and ``plain``) with ``count`` dense candidates."""
    model.cfg = replace(model.cfg, dense_candidates=count)
    t0 = time.perf_counter()
    c = candidates(model, data, trie, rows, beam, desc=f"{count} dense candidates")
    target = data.tensors["target"].numpy()[rows]
    out = {str(m): {**scored(c, target, m, True), "plain": scored(c, target, m, False)} for m in mixes}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    print(count, out, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    add_workdir_argument(ap)
    ap.add_argument("--version", required=True)
    ap.add_argument("--model-dirs", required=True, help="comma-separated model directories (several: an ensemble)")
    ap.add_argument("--counts", default="0,25,50,100", help="numbers of dense candidates to try")
    ap.add_argument("--rows", type=int, default=3000, help="seeded random validation users (0: all)")
    ap.add_argument("--test", action="store_true", help="read every test user at the chosen setting")
    ap.add_argument("--test-own", action="store_true",
                    help="with --test, also at the generators' own setting (what benchmarks/beauty.py read for them)")
    ap.add_argument("--beam", type=int, default=50)
    ap.add_argument("--name", default="beauty_dense_candidates")
    args = ap.parse_args()
    paths = beauty_paths(args.workdir)
    models, cat, data, trie = load_pretrained_many(paths, args.version, args.model_dirs.split(","))
    model = GeneratorEnsemble(models) if len(models) > 1 else models[0]
    if model.cfg.dense_weight <= 0:
        raise SystemExit("these generators have no dense head: no dense candidates to join")
    own = (model.cfg.dense_candidates, model.cfg.dense_mix)
    rows = split_rows(data, "valid", cat.pad, args.rows, sample=True)
    valid = {str(n): read(model, data, trie, rows, args.beam, int(n), MIXES) for n in args.counts.split(",")}
    chosen = max(((n, m) for n in valid for m in map(str, MIXES)),
                 key=lambda nm: sum(valid[nm[0]][nm[1]][k] for k in KEYS))
    result = {"version": args.version, "members": len(models), "beam": args.beam, "valid_rows": int(len(rows)),
              "valid": valid, "chosen_on_valid": {"dense_candidates": int(chosen[0]), "dense_mix": float(chosen[1])},
              "own": {"dense_candidates": own[0], "dense_mix": own[1]}}
    if args.test:
        test_rows = split_rows(data, "test", cat.pad)
        result["test"] = {"chosen": read(model, data, trie, test_rows, args.beam, int(chosen[0]), (chosen[1],))}
        if args.test_own:
            result["test"]["own"] = read(model, data, trie, test_rows, args.beam, own[0], (own[1],))
            result["test_gain"] = {k: round(result["test"]["chosen"][chosen[1]][k]
                                            / result["test"]["own"][str(own[1])][k], 3) for k in KEYS}
    write_result(args.name, result, {"version": args.version, "members": len(models), "rows": args.rows,
                                     "counts": args.counts, "beam": args.beam})
    print(result)


if __name__ == "__main__":
    main()
