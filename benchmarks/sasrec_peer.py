"""The peer for the Beauty benchmark: RecBole's SASRec (cross-entropy loss) on OxyRec's own split.

The leave-one-out split OxyRec built (``splits`` table: every user's interactions
with their position) is written as a RecBole atomic ``.inter`` file whose
timestamp is the position, so RecBole's "LS valid_and_test" split, ordered by
time and grouped by user, holds out exactly the same last two items. SASRec then
trains epoch by epoch until the next epoch would overrun the wall-clock budget,
and is scored once on the test split with full ranking over all items, both as
RecBole scores it and with the items of each user's input sequence excluded (the
same serving filter OxyRec's ``exclude_history`` applies), by OxyRec's own ``ranking_metrics``.

RecBole needs the ``bench`` extra (``pip install -e '.[bench]'``). With numpy 2
it imports only after the removed numpy aliases are restored (below).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from oxy_dagster.io import write_text

SASREC = dict(MAX_ITEM_LIST_LENGTH=50, hidden_size=64, inner_size=256, n_layers=2, n_heads=2,
              hidden_dropout_prob=0.5, attn_dropout_prob=0.5, loss_type="CE", learning_rate=1e-3,
              train_batch_size=256)


def _numpy_aliases() -> None:
    for name, target in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_)):
        if not hasattr(np, name):
            setattr(np, name, target)


def write_inter(splits: pd.DataFrame, root: Path, name: str = "beauty") -> Path:
    """RecBole atomic file of (user, item, position-as-timestamp), written atomically."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    df = splits.sort_values(["user_id", "pos"])[["user_id", "item_id", "pos"]]
    header = "user_id:token\titem_id:token\ttimestamp:float\n"
    write_text(folder / f"{name}.inter", header + df.to_csv(sep="\t", header=False, index=False))
    return folder


def full_sort_top(trainer, data, k: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every user's top ``k`` items over the whole catalogue (RecBole item ids), with the input sequence's items
    excluded and plain, and the target item ids."""
    import torch

    trainer.model.eval()
    trainer.tot_item_num = data._dataset.item_num
    top = {"excluded": [], "plain": []}
    targets = []
    with torch.no_grad():
        for batch in data:
            interaction, scores, _, pos_i = trainer._full_sort_batch_eval(batch)  # padding item 0 at -inf
            targets.append(pos_i)
            top["plain"].append(scores.topk(k, dim=1).indices)
            seen = interaction[trainer.model.ITEM_SEQ]
            top["excluded"].append(scores.scatter(1, seen, float("-inf")).topk(k, dim=1).indices)
    return torch.cat(top["excluded"]).numpy(), torch.cat(top["plain"]).numpy(), torch.cat(targets).numpy()


def eval_users(trainer, data) -> np.ndarray:
    """The user tokens of an evaluation loader's rows, in the order ``full_sort_top`` reads them."""
    field = trainer.model.USER_ID
    ids = np.concatenate([batch[0][field].numpy() for batch in data])
    return data._dataset.id2token(field, ids)


def full_sort_metrics(trainer, test_data, ks=(5, 10, 20)) -> tuple[dict[str, float], dict[str, float]]:
    """Recall/NDCG@K over all items, (with the input sequence's items excluded, plain), scored by OxyRec's
    own ``ranking_metrics`` from each user's top max(ks) items."""
    from oxy_dagster.model.evaluate import ranking_metrics

    excluded, plain, target = full_sort_top(trainer, test_data, max(ks))
    return tuple({k: float(v.mean()) for k, v in ranking_metrics(top, target, ks).items()}
                 for top in (excluded, plain))


def run_sasrec(splits: pd.DataFrame, budget_s: float, workdir: Path, seed: int = 0, log=print,
               curve: bool = False, after=None, epochs: int = 0) -> dict:
    """Train SASRec for at most ``budget_s`` seconds of epochs (``epochs`` > 0: at most that many); return its test
    metrics.

    ``curve``: after every epoch score every validation and test user (history filter on, and ``plain``); the
    scoring time is not counted against the budget. The points are returned under ``curve``. ``after(trainer,
    valid_data, test_data)``: called on the trained model; its dict is returned under ``after``."""
    _numpy_aliases()
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    write_inter(splits, workdir)
    config = Config(model="SASRec", dataset="beauty", config_dict={
        **SASREC, "data_path": str(workdir), "checkpoint_dir": str(workdir / "saved"),
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]}, "train_neg_sample_args": None,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "metrics": ["Recall", "NDCG"], "topk": [5, 10], "valid_metric": "NDCG@10", "eval_batch_size": 4096,
        "device": "cpu", "use_gpu": False, "seed": seed, "reproducibility": True, "show_progress": True,
        "epochs": 10_000, "log_wandb": False, "worker": 0})
    init_seed(config["seed"], config["reproducibility"])
    torch.set_num_threads(max(1, torch.get_num_threads()))
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    epoch, times, points = 0, [], []
    while True:
        start = time.perf_counter()
        loss = trainer._train_epoch(train_data, epoch, show_progress=True)
        times.append(time.perf_counter() - start)
        epoch += 1
        log({"peer_epoch": epoch, "peer_loss": float(np.sum(loss)), "peer_epoch_s": times[-1]})
        if curve:
            point = {"minute": round(sum(times) / 60, 2), "epoch": epoch}
            for split, loader in (("valid", valid_data), ("test", test_data)):
                excluded, plain = full_sort_metrics(trainer, loader, ks=(10,))
                point[split] = {**{k: round(v, 5) for k, v in excluded.items()},
                                "plain": {k: round(v, 5) for k, v in plain.items()}}
            points.append(point)
            log({"peer_curve": point})
        if sum(times) + float(np.mean(times)) > budget_s or (epochs and epoch >= epochs):
            break
    wall = sum(times)
    result = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    excluded, plain = full_sort_metrics(trainer, test_data)
    for k in ("recall@10", "ndcg@10"):  # the shared ranking routine agrees with RecBole's own evaluator
        if abs(plain[k] - float(result[k])) > 1e-3:
            raise RuntimeError(f"peer {k}: RecBole {result[k]} vs full_sort_metrics {plain[k]}")
    return {"model": "RecBole SASRec (CE loss, max length 50, hidden 64, 2 layers)",
            **{k: round(v, 5) for k, v in excluded.items()}, "plain": {k: round(v, 5) for k, v in plain.items()},
            "exclude_history": True,
            "recbole_evaluator": {k: float(result[k]) for k in ("recall@5", "ndcg@5", "recall@10", "ndcg@10")},
            "train_wall_s": round(wall, 1), "epochs": epoch, "seed": seed, **({"curve": points} if curve else {}),
            "params": int(sum(p.numel() for p in model.parameters())),
            "items": int(dataset.item_num - 1), "users": int(dataset.user_num - 1),
            **({"after": after(trainer, valid_data, test_data)} if after else {})}
