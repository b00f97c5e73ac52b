"""Contrastive training of the fusion encoder (in-batch InfoNCE).

Sources of positive pairs:
* ``swing``: item-to-item pairs from the Swing table (behaviour);
* ``query``: (search query, clicked / carted / bought item) from train interactions;
* ``peers``: semantic peers, items under the same query and the same leaf category
  (or, where there are no queries, random items sharing the leaf category).
Each step draws one batch per active source; the loss is the sum of their
symmetric InfoNCE terms. Items that appear twice in a batch are masked out of
each other's negatives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .features import StructuredFeatures
from .fusion import FusionEncoder, QueryTower


@dataclass
class TrainConfig:
    sources: tuple[str, ...] = ("swing",)
    # Peers (same query + leaf, or same leaf) are a weak signal: weighted down so they regularize, not dominate.
    source_weights: dict[str, float] = field(default_factory=lambda: {"swing": 1.0, "query": 1.0, "peers": 0.3})
    epochs: float = 2.0  # passes over the largest source
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 0.01
    temperature: float = 0.05
    seed: int = 0
    max_steps: int = 2000
    loss_log: list[float] = field(default_factory=list)


@dataclass
class ItemInputs:
    """Per-item model inputs as tensors, indexed by item position."""

    text: torch.Tensor
    image: torch.Tensor | None
    feats: StructuredFeatures

    def batch(self, idx: np.ndarray) -> dict:
        t = torch.from_numpy
        return dict(text=self.text[idx], image=None if self.image is None else self.image[idx],
                    cate=t(self.feats.cate[idx]), brand=t(self.feats.brand[idx]), price=t(self.feats.price[idx]))


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float, a_ids=None, b_ids=None) -> torch.Tensor:
    """Symmetric in-batch InfoNCE; an entry with the same id as the positive is not used as a negative."""
    logits = a @ b.T / temperature
    target = torch.arange(len(a), device=a.device)
    l_ab, l_ba = logits, logits.T
    if a_ids is not None and b_ids is not None:
        eye = torch.eye(len(a), dtype=torch.bool, device=a.device)
        dup = lambda ids: (torch.as_tensor(ids)[None, :] == torch.as_tensor(ids)[:, None]) & ~eye  # noqa: E731
        l_ab = l_ab.masked_fill(dup(b_ids), float("-inf"))
        l_ba = l_ba.masked_fill(dup(a_ids), float("-inf"))
    return 0.5 * (F.cross_entropy(l_ab, target) + F.cross_entropy(l_ba, target))


def train_fusion(model: FusionEncoder, items: ItemInputs, pairs: dict[str, np.ndarray], cfg: TrainConfig,
                 query_text: torch.Tensor | None = None) -> tuple[FusionEncoder, QueryTower | None, list[float]]:
    """``pairs[src]`` is an (n, 2) int array: item/item positions, or (query row, item) for ``query``."""
    active = {s: p for s, p in pairs.items() if s in cfg.sources and len(p) > 0}
    if not active:
        raise ValueError(f"no training pairs for sources {cfg.sources}: got sizes "
                         f"{ {k: len(v) for k, v in pairs.items()} }")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    qtower = QueryTower(items.text.shape[1], model.cfg.out_dim) if "query" in active else None
    params = list(model.parameters()) + (list(qtower.parameters()) if qtower else [])
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    biggest = max(len(p) for p in active.values())
    steps = int(min(cfg.max_steps, max(1, cfg.epochs * biggest / cfg.batch_size)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.1)
    model.train()
    losses = []
    bar = tqdm(range(steps), desc="contrastive", mininterval=2)
    for _ in bar:
        loss = 0.0
        for src, p in active.items():
            sel = p[rng.integers(0, len(p), size=min(cfg.batch_size, len(p)))]
            b = model(**items.batch(sel[:, 1]))
            if src == "query":
                a = qtower(query_text[sel[:, 0]])
            else:
                a = model(**items.batch(sel[:, 0]))
            loss = loss + cfg.source_weights.get(src, 1.0) * info_nce(a, b, cfg.temperature, sel[:, 0], sel[:, 1])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    model.eval()
    return model, qtower, losses


@torch.no_grad()
def embed_items(model: FusionEncoder, items: ItemInputs, batch_size: int = 2048) -> np.ndarray:
    model.eval()
    n = items.text.shape[0]
    out = [model(**items.batch(np.arange(i, min(n, i + batch_size)))) for i in range(0, n, batch_size)]
    return torch.cat(out).numpy().astype(np.float32)
