"""Benchmark: the generator on Amazon Beauty (leave-one-out, all 12,101 items, history 20) vs SASRec.

For each SID version (default V4, then V1) the generator trains until the same
wall-clock budget is spent (``TrainConfig.budget_s``: the cosine LR decays over
the budget's seconds, so no step count is planned from a probe), then ranks the
whole catalogue for every test user with trie-constrained beam search. RecBole's
SASRec gets the training seconds OxyRec measured as its budget
on the same split (``benchmarks/sasrec_peer.py``). Both are scored twice: with
the items already in each user's history excluded from the list (the headline: Beauty
never repeats an item, ``history_repeat_rate``, so the filter cannot cost a hit) and
without (``plain``); the selected model is also scored on every validation user (``valid``, beside the
peer's selected epoch: ``ratio_to_peer_valid``). Writes benchmarks/results/beauty.json (+ a bar chart) and logs
both to MLflow. ``--reuse-trained`` re-scores the models an earlier run trained (an ensemble's members too, with
that run's ``--members``; ``--dense-mix`` / ``--dense-interleave`` then re-rank them). ``--members N`` spends the
budget on N generators trained one after another (budget / N each, seeds seed..seed + N - 1) and decodes them
as one (``GeneratorEnsemble``: the members' mean log-probability per code level, trie-constrained as ever).

Usage: ``python -m benchmarks.beauty [--budget-min 20] [--versions V4,V1] [--members 1] [--no-peer]
[--reuse-trained F]`` (the peer needs ``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import torch

from benchmarks.beauty_data import add_workdir_argument, beauty_paths, check_catalogue_order, prepare_data
from benchmarks.beauty_eval import curve_point, minutes_to, split_figures
from benchmarks.beauty_scored import load_scored, require_peer_package, run_key, save_scored
from benchmarks.common import RESULTS, PeakRSS, write_result
from oxy_dagster.io import save_figure
from oxy_dagster.model.checkpoint import latest_checkpoint
from oxy_dagster.model.config import GeneratorConfig, TrainConfig
from oxy_dagster.model.ensemble import CodebookEnsemble, GeneratorEnsemble
from oxy_dagster.model.evaluate import history_repeat_rate
from oxy_dagster.model.pipeline import load_pretrained, pretrain
from oxy_dagster.paths import DataPaths
from oxy_dagster.paths import work_dir as oxy_home

TIGER = {"recall@5": 0.0454, "ndcg@5": 0.0321, "recall@10": 0.0648, "ndcg@10": 0.0384}  # NeurIPS 2023, Table 1
KEYS = ("recall@5", "ndcg@5", "recall@10", "ndcg@10")


def recipe(args) -> dict:
    """The generator overrides this run trains with (regularisation levers of #15)."""
    return {"dropout": args.dropout, "emb_dropout": args.emb_dropout, "label_smoothing": args.label_smoothing,
            "item_id_emb": args.item_id_emb, "tie_heads": args.tie_heads, "user_buckets": args.user_buckets,
            "dense_weight": args.dense_weight, "dense_mix": args.dense_mix, "dense_ahead": args.dense_ahead,
            "dense_candidates": args.dense_candidates, "dense_exclude_history": args.dense_exclude_history,
            "dense_free_items": args.dense_free_items, "last_item_trigger": args.last_item_trigger,
            "dense_interleave": args.dense_interleave}


def train(paths: DataPaths, version: str, out: Path, args) -> dict:
    """Train until the wall-clock budget is spent (the cosine LR decays over its seconds); the training figures.

    With ``--curve-every-min`` training stops every that many minutes after a checkpoint, the checkpoint is
    scored on validation and test users (``curve_point``; not counted as training time), and training resumes
    from it on the same trajectory. The weights of the curve point with the best validation figures are kept
    (``best``): the checkpoint a user would select on validation."""
    shutil.rmtree(out, ignore_errors=True)
    cfg = TrainConfig(steps=10**7, budget_s=args.budget_min * 60, batch_size=args.batch_size, lr=args.lr, warmup=200,
                      seed=args.seed, log_every=50, ckpt_every=10**6, engine="torch",
                      group_by_length=args.group_by_length, autocast=args.autocast,
                      recency_weight=args.recency_weight, ema_decay=args.ema_decay)
    segment = args.curve_every_min * 60
    print(f"{version}: training for {args.budget_min} min of wall clock", flush=True)
    curve, wall, best = [], 0.0, None
    while True:
        t0 = time.perf_counter()
        info, model, cat, data, trie = pretrain(paths, version, args.size, replace(cfg, max_wall_s=segment),
                                                out_dir=out, **recipe(args))
        wall += time.perf_counter() - t0
        trained_s = json.loads((latest_checkpoint(out / "checkpoints") / "state.json").read_text())["trained_s"]
        if segment:
            curve.append(curve_point(model, data, trie, trained_s / 60, args.curve_rows, args.beam))
            print("curve", curve[-1], flush=True)
            if best is None or valid_score(curve[-1]) > valid_score(best):
                best = {**curve[-1], "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
        if not segment or trained_s >= cfg.budget_s:
            break
    return {"bundle": (model, cat, data, trie), "curve": curve, "best": best,
            "train_wall_s": round(wall, 1), "trained_s": round(trained_s, 1),
            "steps_done": info["steps"], "epochs": round(info["steps"] * args.batch_size / info["train_samples"], 2),
            "final_loss": info["final_loss"], "params": info["params"], "seed": args.seed, "sid_version": version,
            "recipe": {k: info["model"][k] for k in (*recipe(args), "d_model")}  # recipe names the dense head's too
            | {"group_by_length": cfg.group_by_length, "autocast": cfg.autocast, "recency_weight": cfg.recency_weight,
               "ema_decay": cfg.ema_decay}}


def train_members(paths: DataPaths, version: str, out: Path, args) -> dict:
    """``--members N``: N generators (seeds ``seed`` .. ``seed + N - 1``), trained one after another for
    ``budget / N`` each, decoded together: ``GeneratorEnsemble`` (one joint beam) on one codebook, or
    ``CodebookEnsemble`` when ``--member-versions`` gives each member its own SID version. The training budget is
    the members' sum, so the peer gets the same seconds. With ``--curve-every-min`` a curve point scores the
    ensemble of the members trained so far after each member, and the prefix with the best validation figures is
    the selected model."""
    shutil.rmtree(out, ignore_errors=True)
    versions = member_versions(version, args)
    members, runs, curve, best = [], [], [], None
    for i, v in enumerate(versions):
        member_args = argparse.Namespace(**{**vars(args), "budget_min": args.budget_min / args.members,
                                            "seed": args.seed + i, "curve_every_min": 0.0})
        run = train(paths, v, out / f"member{i}", member_args)
        model, cat_i, data_i, trie_i = run.pop("bundle")
        if i == 0:
            cat, data, trie = cat_i, data_i, trie_i
        else:
            check_catalogue_order(cat, cat_i, f"member {i}'s SID version {v}", versions[0])
        members.append((model, trie_i))
        runs.append({k: run[k] for k in ("seed", "trained_s", "train_wall_s", "steps_done", "epochs", "final_loss")}
                    | {"sid_version": v})
        if args.curve_every_min > 0:
            minute = sum(r["trained_s"] for r in runs) / 60
            curve.append(curve_point(ensemble_of(members), data, trie, minute, args.curve_rows, args.beam))
            print("curve", len(members), "members:", curve[-1], flush=True)
            if best is None or valid_score(curve[-1]) > valid_score(best):
                best = {**curve[-1], "members": len(members), "model": ensemble_of(list(members))}
    total = lambda k: round(sum(r[k] for r in runs), 2)  # noqa: E731
    return {"bundle": (ensemble_of(members), cat, data, trie), "curve": curve, "best": best,
            "train_wall_s": total("train_wall_s"), "trained_s": total("trained_s"), "steps_done": total("steps_done"),
            "epochs": total("epochs"), "final_loss": round(sum(r["final_loss"] for r in runs) / len(runs), 4),
            "params": run["params"] * len(runs), "seed": args.seed, "sid_version": version, "members": runs,
            "selected_members": best["members"] if best else len(runs),
            "recipe": {**run["recipe"], "members": len(runs), "member_budget_min": args.budget_min / args.members,
                       "member_versions": versions}}


def member_versions(version: str, args) -> list[str]:
    """Each member's SID version: ``--member-versions`` (one per member, the first the run's version), else
    ``version`` for all ``--members``."""
    if not args.member_versions:
        return [version] * args.members
    versions = args.member_versions.split(",")
    if len(versions) != args.members or versions[0] != version:
        raise SystemExit(f"--member-versions names {len(versions)} versions starting {versions[0]}; it needs "
                         f"--members ({args.members}) of them, starting with the run's version {version}")
    return versions


def ensemble_of(members: list[tuple]) -> GeneratorEnsemble | CodebookEnsemble:
    """(generator, trie) members: one joint beam when they share a codebook, else each member's beam proposing
    and all scoring."""
    models = [m for m, _ in members]
    if all(torch.equal(m.item_codes, models[0].item_codes) for m in models):
        return GeneratorEnsemble(models)
    return CodebookEnsemble(members)


def valid_score(point: dict) -> float:
    """How a curve point ranks for checkpoint selection: validation Recall@10 + NDCG@10 (history filter on)."""
    return point["valid"]["recall@10"] + point["valid"]["ndcg@10"]


def select_peer(peer: dict) -> dict:
    """The peer read at its epoch with the best validation figures (its curve scores every user), as OxyRec is;
    its last epoch's figures move under ``final`` (the cut-offs the curve does not score, e.g. @5, stay there only)
    and the selected epoch's validation figures are kept under ``valid``. A peer already selected (one
    ``--peer-from`` carries from a later run) keeps its ``final``, and gains ``valid`` from its curve."""
    if not peer.get("curve"):
        return peer
    if "selected_epoch" in peer:
        point = next(p for p in peer["curve"] if p["epoch"] == peer["selected_epoch"])
        return {**peer, "valid": point["valid"]}
    best = max(peer["curve"], key=valid_score)
    metric = lambda k: k.startswith(("recall@", "ndcg@"))  # noqa: E731
    final = {k: v for k, v in peer.items() if metric(k) or k == "plain"}
    rest = {k: v for k, v in peer.items() if not (metric(k) or k == "plain")}
    return {**rest, **best["test"], "valid": best["valid"], "selected_epoch": best["epoch"],
            "selected_minute": best["minute"], "final": final}


def reuse(paths: DataPaths, version: str, out: Path, earlier: dict, args) -> dict:
    """The model an earlier run of this benchmark trained (its last checkpoint; with ``--members``, each member's
    under ``out/member<i>``, decoded as that run decoded them), with that run's training figures and curve (so a
    peer trained here gets the seconds that run measured). ``--dense-mix`` / ``--dense-interleave`` re-rank it."""
    before = earlier["by_sid_version"][version]
    runs = before.get("members") or [before]
    if len(runs) != args.members:
        raise SystemExit(f"the results file trained {len(runs)} member(s); pass --members {len(runs)}")
    dirs = [out / f"member{i}" for i in range(len(runs))] if args.members > 1 else [out]
    members = []
    for d, r in zip(dirs, runs):
        info = json.loads((d / "info.json").read_text())
        if info["steps"] != r["steps_done"] or ("params" in r and info["params"] != r["params"]):
            raise ValueError(f"{d} holds {info['steps']} steps / {info['params']} params, not the run in the "
                             f"results file ({r['steps_done']} / {r.get('params')})")
        model, cat, data, trie = load_pretrained(paths, r.get("sid_version", version), out_dir=d)
        members.append((model, trie))
        if len(members) == 1:
            bundle = (cat, data, trie)  # the first member's, as a trained ensemble keeps them
    model = ensemble_of(members) if len(members) > 1 else members[0][0]
    model.cfg = replace(model.cfg, dense_mix=args.dense_mix, dense_interleave=args.dense_interleave)
    keep = ("train_wall_s", "trained_s", "steps_done", "epochs", "final_loss", "params", "seed", "sid_version",
            "curve", "members", "selected_members", "recipe")  # the curve's points are that run's checkpoints
    return {"bundle": (model, *bundle), **{k: before[k] for k in keep if k in before},
            "trained_at_commit": earlier["commit"]}


def evaluate_both(run: dict, args) -> dict:
    """Test metrics with the history filter and without it (``plain``), of the checkpoint selected on validation
    (the curve's best point) when there is a curve, the last one otherwise; the last one's stay under ``final``.
    ``valid``: the selected model's figures on every validation user (the curve scores a sample of them), the
    figures to hold beside the peer's at its selected epoch."""
    model, cat, data, trie = run.pop("bundle")
    best = run.pop("best", None)
    t0 = time.perf_counter()
    figures = lambda split: split_figures(model, data, trie, cat.codes, args.beam, args.eval_rows, split)  # noqa: E731

    final = figures("test")
    selected = {"selected_minute": run["curve"][-1]["minute"]} if run.get("curve") else {}
    if best is not None and best["minute"] < run["curve"][-1]["minute"]:
        if "model" in best:  # an ensemble of the first members
            model = best["model"]
        else:
            model.load_state_dict(best["state"])
        selected = {**figures("test"), "selected_minute": best["minute"], "final": final}
    valid = figures("valid")
    valid = {**{k: valid[k] for k in (*KEYS, "evaluated")}, "plain": {k: valid["plain"][k] for k in KEYS}}
    return {**final, **selected, **run, "valid": valid,
            "exclude_history": True, "history_repeat_rate": round(history_repeat_rate(data), 5),
            "eval_wall_s": round(time.perf_counter() - t0, 1), "beam": args.beam, "size": args.size}


def plot(results: dict, peer: dict | None, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {}
    for v, r in results.items():
        rows |= {f"OxyRec {v}, history excluded": r, f"OxyRec {v}, no filter": r["plain"]}
    if peer:
        rows |= {"SASRec (RecBole), history excluded": peer, "SASRec (RecBole), no filter": peer["plain"]}
    rows["TIGER (paper)"] = TIGER
    fig, ax = plt.subplots(figsize=(7, 3.8))
    width = 0.8 / len(rows)
    for i, (name, r) in enumerate(rows.items()):
        ax.bar([j + i * width for j in range(len(KEYS))], [r.get(k, 0.0) for k in KEYS], width, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(KEYS))], KEYS)
    ax.set(title="Amazon Beauty, leave-one-out, full ranking", ylabel="score")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_curve(oxyrec: dict, peer: list[dict], rows: int, path: Path) -> Path:
    """Validation Recall@10 (history filter on) against minutes of training, both models: OxyRec's curve on
    ``rows`` sampled users per point (0: all), its selected model on every user, the peer's on every user."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8))
    sample = f"{rows} sampled users" if rows else "every user"
    for name, curve in ((f"OxyRec ({sample})", oxyrec["curve"]), ("SASRec (RecBole, every user)", peer)):
        if curve:
            ax.plot([p["minute"] for p in curve], [p["valid"]["recall@10"] for p in curve], marker="o", label=name)
    if "valid" in oxyrec and "selected_minute" in oxyrec:
        ax.plot([oxyrec["selected_minute"]], [oxyrec["valid"]["recall@10"]], marker="*", markersize=12,
                linestyle="", label="OxyRec selected model (every user)")
    ax.set(xlabel="minutes of training (2 cores)", ylabel="validation Recall@10",
           title="Amazon Beauty: recall against training time")
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def lever_tables() -> list[Path]:
    """Every levers table committed (10 and 20 minutes, each machine): the results carry each lever tried (#15)."""
    return sorted(RESULTS.glob("beauty_levers*.json"))


def carried_levers(table: dict) -> dict:
    """One levers table as the results carry it: where and how it was measured, then each lever's figures."""
    return {"commit": table["commit"], "split": table["split"], "budget_s": table["budget_s"],
            "machine": table.get("machine"),
            **{name: {k: row[k] for k in ("recall@10", "ndcg@10", "plain", "kept", "std") if k in row}
               for name, row in table["levers"].items()}}


def parser() -> argparse.ArgumentParser:
    """The benchmark's arguments (``parser().parse_args([])``: the defaults ``train`` needs, for other benchmarks)."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset-path", default=None)
    add_workdir_argument(ap)
    ap.add_argument("--budget-min", type=float, default=20.0)
    ap.add_argument("--versions", default="V4,V1")
    ap.add_argument("--size", default="small")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--group-by-length", type=int, default=TrainConfig.group_by_length,
                    help="TrainConfig.group_by_length (0: the uniform random batches of the runs before #15)")
    ap.add_argument("--autocast", default=TrainConfig.autocast, choices=("off", "bf16"),
                    help="bf16: the generator's forward under CPU autocast (AMX / AVX512-BF16 machines)")
    ap.add_argument("--recency-weight", type=float, default=TrainConfig.recency_weight,
                    help="TrainConfig.recency_weight: the loss leans to each user's late interactions")
    ap.add_argument("--ema-decay", type=float, default=TrainConfig.ema_decay,
                    help="TrainConfig.ema_decay: the members are read as their weights' moving average")
    ap.add_argument("--dropout", type=float, default=GeneratorConfig.dropout)
    ap.add_argument("--emb-dropout", type=float, default=GeneratorConfig.emb_dropout)
    ap.add_argument("--label-smoothing", type=float, default=GeneratorConfig.label_smoothing)
    ap.add_argument("--item-id-emb", action=argparse.BooleanOptionalAction, default=GeneratorConfig.item_id_emb,
                    help="a learned per-item vector beside the semantic ID's codes (GeneratorConfig.item_id_emb)")
    ap.add_argument("--tie-heads", action="store_true",
                    help="each code level's output head shares its code embedding's matrix (GeneratorConfig.tie_heads)")
    ap.add_argument("--user-buckets", type=int, default=GeneratorConfig.user_buckets,
                    help="TIGER's hashed user-ID vectors on the profile token (GeneratorConfig.user_buckets; 0: none)")
    ap.add_argument("--dense-weight", type=float, default=GeneratorConfig.dense_weight,
                    help="LIGER's dense head beside next-token prediction (GeneratorConfig.dense_weight; 0: none)")
    ap.add_argument("--dense-ahead", type=int, default=GeneratorConfig.dense_ahead,
                    help="the dense head also learns the user's next N later training targets (GeneratorConfig."
                         "dense_ahead)")
    ap.add_argument("--dense-free-items", action=argparse.BooleanOptionalAction,
                    default=GeneratorConfig.dense_free_items,
                    help="the dense head scores items by their per-item vectors alone "
                         "(GeneratorConfig.dense_free_items)")
    ap.add_argument("--last-item-trigger", action=argparse.BooleanOptionalAction,
                    default=GeneratorConfig.last_item_trigger,
                    help="a sample without a trigger takes its most recent history item as one (GeneratorConfig."
                         "last_item_trigger)")
    ap.add_argument("--dense-exclude-history", action=argparse.BooleanOptionalAction,
                    default=GeneratorConfig.dense_exclude_history,
                    help="the dense loss leaves each sample's history items out of its softmax (GeneratorConfig."
                         "dense_exclude_history)")
    ap.add_argument("--dense-mix", type=float, default=GeneratorConfig.dense_mix,
                    help="beam candidates ranked by log p(codes) + this x the dense head's log p(item) "
                         "(GeneratorConfig.dense_mix; choose it on validation: benchmarks/beauty_levers.py)")
    ap.add_argument("--dense-candidates", type=int, default=GeneratorConfig.dense_candidates,
                    help="the dense head's N best items outside the beam join its candidates (GeneratorConfig."
                         "dense_candidates; 0: the beam's only)")
    ap.add_argument("--dense-interleave", type=float, default=GeneratorConfig.dense_interleave,
                    help="the ranked list merged with the dense head's own ranking at this weight (GeneratorConfig."
                         "dense_interleave; 0: the beam's list); with --reuse-trained it re-ranks the loaded models")
    ap.add_argument("--members", type=int, default=1,
                    help="> 1: train that many generators for budget / members each and decode them as one ensemble")
    ap.add_argument("--member-versions", default=None,
                    help="with --members N: N comma-separated SID versions, one per member, the first the run's "
                         "(e.g. V4-collaborative0.6,V4-collaborative0.6-seed1: the same vectors under another "
                         "RQ-KMeans seed); members on different codebooks decode as a CodebookEnsemble")
    ap.add_argument("--beam", type=int, default=20)
    ap.add_argument("--eval-rows", type=int, default=0, help="0: every test user")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--peer-from", default=None,
                    help="a results JSON: carry its peer (trained on the same split and budget) instead of training "
                         "SASRec again; the JSON names the run it came from")
    ap.add_argument("--curve-every-min", type=float, default=0.0,
                    help="> 0: score a checkpoint every this many minutes of training (and the peer after each "
                         "epoch) on validation and test users: the recall-vs-time curve and minutes_to_tiger")
    ap.add_argument("--curve-rows", type=int, default=3000, help="users per split scored at each curve point")
    ap.add_argument("--name", default="beauty", help="results name: benchmarks/results/<name>.json and .png")
    ap.add_argument("--models-dir", default=None,
                    help="where the trained models are kept, one folder per SID version (default: $OXY_HOME/bench/"
                         "beauty-models; another keeps an earlier run's models for --reuse-trained)")
    ap.add_argument("--levers-from", default=",".join(str(f) for f in lever_tables()),
                    help="comma-separated levers tables (benchmarks/beauty_levers.py) to carry into the results, "
                         "each under its file name")
    ap.add_argument("--reuse-trained", default=None,
                    help="a results JSON: evaluate the models that run trained (kept under $OXY_HOME/bench/"
                         "beauty-models) instead of training again; its training figures are carried over")
    ap.add_argument("--resume", action="store_true",
                    help="reuse the scored figures an earlier run of the same settings kept in --models-dir (a run "
                         "that failed after scoring OxyRec, e.g. in the peer): only what is missing runs")
    ap.add_argument("--sid-effect-from", default=None,
                    help="with one --versions entry: a results JSON whose sid_version_effect to carry over")
    return ap


def main() -> None:
    args = parser().parse_args()
    versions = args.versions.split(",")
    paths = beauty_paths(args.workdir)
    require_peer_package(args)  # before the hour of training, not after it
    prepare_data(paths, args.dataset_path, versions + (args.member_versions.split(",") if args.member_versions else []))
    results, resumed = {}, []
    with PeakRSS() as rss:
        earlier = json.loads(Path(args.reuse_trained).read_text()) if args.reuse_trained else None
        key = run_key(args, recipe(args))  # the same settings for every version
        for v in versions:
            out = (Path(args.models_dir) if args.models_dir else oxy_home() / "bench" / "beauty-models") / v
            results[v] = load_scored(out, key) if args.resume else None
            if results[v] is not None:
                print(f"{v}: scored figures reused from {out}", flush=True)
                resumed.append(v)
                continue
            if earlier:
                run = reuse(paths, v, out, earlier, args)
            else:
                run = (train_members if args.members > 1 else train)(paths, v, out, args)
            results[v] = evaluate_both(run, args)
            save_scored(out, key, results[v])
            print(v, results[v], flush=True)
        peer = None
        if args.peer_from:
            carried = json.loads(Path(args.peer_from).read_text())
            peer = {**carried["peer"], "from": {"file": Path(args.peer_from).name, "commit": carried["commit"],
                                                "date": carried["date"]}}
        elif not args.no_peer:
            from benchmarks.sasrec_peer import run_sasrec

            splits = pq.read_table(paths.splits,
                                   columns=["user_id", "item_id", "pos"]).to_pandas()
            # The seconds OxyRec's training loop measured itself (resumes included), not the nominal budget.
            main_run = results[versions[0]]
            peer = run_sasrec(splits, main_run.get("trained_s", main_run["train_wall_s"]),
                              oxy_home() / "bench" / "recbole", seed=args.seed, log=lambda r: print(r, flush=True),
                              curve=args.curve_every_min > 0)
            print("peer", peer, flush=True)
        peer = select_peer(peer) if peer else None
    main_v = results[versions[0]]
    figures = {**{k: main_v[k] for k in (*KEYS, "train_wall_s", "params", "seed", "sid_version", "valid")},
               "budget_s": earlier["budget_s"] if earlier else args.budget_min * 60,
               **({"trained_at_commit": earlier["commit"]} if earlier else {}),
               **({"scored_by_an_earlier_run": resumed} if resumed else {}),
               "by_sid_version": results, "tiger": TIGER, "peak_rss_mb": rss.peak_mb,
               "exclude_history": True, "history_repeat_rate": main_v["history_repeat_rate"], "plain": main_v["plain"],
               "passes_tiger": all(main_v[k] >= TIGER[k] for k in ("recall@10", "ndcg@10")),
               "passes_tiger_plain": all(main_v["plain"][k] >= TIGER[k] for k in ("recall@10", "ndcg@10"))}
    if len(versions) > 1:
        figures["sid_version_effect"] = {f"recall@10_{v}": results[v]["recall@10"] for v in versions}
        figures["sid_version_effect"]["recall@10_ratio"] = round(
            results[versions[0]]["recall@10"] / max(results[versions[1]]["recall@10"], 1e-9), 3)
    elif args.sid_effect_from:
        # One version this run: carry the V4-vs-V1 comparison of an earlier (shorter) run, labelled as such.
        carried = json.loads(Path(args.sid_effect_from).read_text())
        figures["sid_version_effect"] = {**carried["sid_version_effect"], "budget_s": carried["budget_s"],
                                         "from": Path(args.sid_effect_from).name, "commit": carried["commit"]}
    if peer:
        figures["peer"] = peer
        figures["ratio_to_peer"] = {k: round(main_v[k] / max(peer[k], 1e-9), 3) for k in KEYS if k in peer}
        figures["ratio_to_peer_plain"] = {k: round(main_v["plain"][k] / max(peer["plain"][k], 1e-9), 3)
                                          for k in KEYS if k in peer["plain"]}
        if "valid" in peer:  # every validation user, both models' selected checkpoints
            figures["ratio_to_peer_valid"] = {
                **{k: round(main_v["valid"][k] / max(peer["valid"][k], 1e-9), 3) for k in KEYS if k in peer["valid"]},
                "plain": {k: round(main_v["valid"]["plain"][k] / max(peer["valid"]["plain"][k], 1e-9), 3)
                          for k in KEYS if k in peer["valid"]["plain"]}}
    pngs = [plot(results, peer, RESULTS / f"{args.name}.png")]
    if main_v.get("curve"):
        peer_curve = (peer or {}).get("curve", [])
        figures["minutes_to_tiger"] = {"oxyrec": minutes_to(main_v["curve"], TIGER),
                                       "oxyrec_plain": minutes_to(main_v["curve"], TIGER, plain=True),
                                       "peer": minutes_to(peer_curve, TIGER) if peer_curve else None,
                                       "peer_plain": minutes_to(peer_curve, TIGER, plain=True) if peer_curve else None,
                                       "curve_rows": args.curve_rows, "split": "test"}
        pngs.append(plot_curve(main_v, peer_curve, args.curve_rows, RESULTS / f"{args.name}_curve.png"))
    tables = [Path(f) for f in args.levers_from.split(",") if Path(f).exists()]
    if tables:
        figures["levers"] = {t.name: carried_levers(json.loads(t.read_text())) for t in tables}
    write_result(args.name, figures, {"dataset": "beauty", "budget_min": figures["budget_s"] / 60,
                                      "size": args.size, "beam": args.beam,
                                      "reuse_trained": bool(args.reuse_trained), "resumed": bool(resumed)},
                 artifacts=pngs)
    print(figures)


if __name__ == "__main__":
    main()
