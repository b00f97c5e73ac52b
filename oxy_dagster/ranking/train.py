"""Training and evaluation of the rankers: AUC and GAUC per scenario and task on the held-out requests.

``train_ranker`` fits one model on the training requests of every window (held-out requests are masked out
of the loss); ``train_per_scenario`` fits one pointwise model per scenario on that scenario's requests only
(the separate-models alternative of seed Table 8), with the same steps per model. ``evaluate`` scores the
held-out requests: AUC per (scenario, task) over all their candidates, GAUC as the candidate-weighted mean
of per-user AUCs over users with both outcomes. Weights are saved as safetensors with a JSON manifest.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from tqdm import tqdm

from ..data.contract import SCENARIOS
from ..io import atomic_dir, write_json, write_safetensors
from ..model.data import Catalogue
from ..model.optim import lr_lambda
from .data import RankData
from .model import TASKS, Features, ItemEmbedding, PointwiseRanker, RankerConfig, UnifiedRanker


def build(kind: str, cfg: RankerConfig, cat: Catalogue, profile_vocab: dict, n_positions: int, text_dim: int = 384):
    torch.manual_seed(cfg.seed)
    items = ItemEmbedding(torch.from_numpy(cat.codes), torch.from_numpy(cat.cate), torch.from_numpy(cat.brand),
                          cfg.d_model)
    feats = Features(cfg, items, profile_vocab, len(SCENARIOS), text_dim, n_positions)
    return (UnifiedRanker if kind == "unified" else PointwiseRanker)(cfg, feats)


def _loss(model, batch: dict, train_mask: torch.Tensor) -> torch.Tensor:
    logits = model(batch)
    mask = (train_mask[..., None] & (batch["candidates"] != model.f.items.pad)).unsqueeze(-1).float()
    bce = F.binary_cross_entropy_with_logits(logits, batch["labels"], reduction="none")
    return (bce * mask).sum() / (mask.sum() * len(TASKS)).clamp(min=1)


def _warmup_cosine(steps: int):
    """10% linear warm-up, then cosine to 0 (the generator's schedule); defined for any number of steps."""
    return lr_lambda(SimpleNamespace(warmup=max(1, steps // 10), steps=steps, min_lr_ratio=0.0))


def fit(model, data: RankData, cfg: RankerConfig, request_filter: torch.Tensor | None = None,
        desc: str = "ranker") -> list[float]:
    """Train on the non-held-out requests (optionally only those ``request_filter`` keeps); returns losses."""
    keep = data.tensors["request_mask"] & ~data.tensors["is_test"]
    if request_filter is not None:
        keep = keep & request_filter
    rows = np.flatnonzero(keep.any(1).numpy())
    steps = max(1, int(cfg.epochs * len(rows) / cfg.batch_size))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _warmup_cosine(steps))
    rng = np.random.default_rng(cfg.seed)
    losses = []
    model.train()
    for _ in tqdm(range(steps), desc=desc, mininterval=5):
        idx = rows[rng.integers(0, len(rows), cfg.batch_size)]
        loss = _loss(model, data.batch(idx), keep[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    return losses


@torch.no_grad()
def predict(model, data: RankData, batch_size: int = 256) -> np.ndarray:
    """Sigmoid scores (S, R, C, 3) for every candidate."""
    model.eval()
    out = [torch.sigmoid(model(data.batch(range(i, min(i + batch_size, len(data))))))
           for i in range(0, len(data), batch_size)]
    return torch.cat(out).numpy()


def auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (ties share the average rank); None without both classes."""
    pos = labels > 0.5
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def evaluate(scores: np.ndarray, data: RankData) -> dict:
    """{scenario: {task: {"auc", "gauc", "candidates"}}} on the held-out requests."""
    t = data.tensors
    held = (t["request_mask"] & t["is_test"]).numpy()[..., None] & (t["candidates"] != data.pad).numpy()
    scen = np.broadcast_to(t["scenario"].numpy()[..., None], held.shape)
    user = np.broadcast_to(np.arange(len(data))[:, None, None], held.shape)
    users = data.users[user]
    out: dict = {}
    for s_id, s_name in enumerate(SCENARIOS):
        m = held & (scen == s_id)
        if not m.any():
            continue
        out[s_name] = {}
        for k, task in enumerate(TASKS):
            y, p, u = t["labels"].numpy()[..., k][m], scores[..., k][m], users[m]
            per_user, weights = [], []
            for uid in np.unique(u):
                a = auc(y[u == uid], p[u == uid])
                if a is not None:
                    per_user.append(a)
                    weights.append(int((u == uid).sum()))
            out[s_name][task] = {"auc": auc(y, p), "candidates": int(m.sum()),
                                 "gauc": float(np.average(per_user, weights=weights)) if per_user else None}
    return out


def save(model, kind: str, cfg: RankerConfig, out: Path, extra: dict) -> Path:
    from dataclasses import asdict

    with atomic_dir(out) as tmp:
        tmp.mkdir()
        write_safetensors(tmp / "model.safetensors", model.state_dict())
        write_json(tmp / "ranker.json", {"kind": kind, "config": asdict(cfg), **extra})
    return out


def load(out: Path, cat: Catalogue):
    meta = json.loads((Path(out) / "ranker.json").read_text())
    cfg = RankerConfig(**meta["config"])
    model = build(meta["kind"], cfg, cat, meta["profile_vocab"], meta["n_positions"], meta.get("text_dim", 384))
    model.load_state_dict(load_file(str(Path(out) / "model.safetensors")))
    return model.eval(), meta
