"""One batched interface: ``score(batch, items) -> per-component and total rewards`` for generated items.

* format: ``format_penalty`` for an invalid item (-1: no item) or one outside the request's candidate pool,
  0 otherwise; the other components of such an item are 0;
* relevance: cosine between the request's instruction (the reference generator's Q2I query vector) and the
  item in the same adapter space (seed eq. 1-2), so the reward does not drift with the policy;
* ranking: the unified ranking model's probability of ``ranking_task`` (default: purchase) for the item in
  the request's context (profile, history, scenario, trigger, instruction), shown at the top slot;
* diversity: 1 / (items of the group sharing the item's level-1 code): a group spread over level-1 codes
  earns more than one piled into a single cluster.

The total is a weighted sum with weights per scenario (``RewardConfig``). A reward that comes out NaN or
infinite stops the step with the offending sample rows; a service built without its ranker refuses to start.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..data.contract import SCENARIOS
from ..model.data import PROFILE_VOCABS
from ..ranking.model import TASKS
from ..settings import setting

COMPONENTS = ("format", "relevance", "ranking", "diversity")

# Why these defaults: ranking (the business objective, seed "Ranking Reward") leads everywhere; relevance to the
# request's context counts most where the context is explicit (search query, the related item's trigger) and
# least on the homepage; diversity matters most in feeds (homepage, channel) and least where the user asked
# for something specific (search, related). Format is a hard penalty, weighted 1 everywhere.
DEFAULT_WEIGHTS = {
    "homepage": {"format": 1.0, "relevance": 0.2, "ranking": 1.0, "diversity": 0.3},
    "channel": {"format": 1.0, "relevance": 0.4, "ranking": 1.0, "diversity": 0.3},
    "related": {"format": 1.0, "relevance": 0.7, "ranking": 1.0, "diversity": 0.1},
    "cart": {"format": 1.0, "relevance": 0.4, "ranking": 1.0, "diversity": 0.2},
    "search": {"format": 1.0, "relevance": 0.8, "ranking": 1.0, "diversity": 0.1},
}


@dataclass
class RewardConfig:
    """Scenario-aware reward mapping (``rl_checkpoint``'s reward service)."""

    format_penalty: float = setting(-1.0, "reward of an invalid or out-of-pool item")
    ranking_task: str = setting("purchase", "the ranker's task whose probability is the ranking reward")
    weights: dict = field(default_factory=lambda: {s: dict(w) for s, w in DEFAULT_WEIGHTS.items()})

    def matrix(self) -> torch.Tensor:
        """(scenarios, components) weights in ``SCENARIOS`` x ``COMPONENTS`` order."""
        return torch.tensor([[self.weights[s][c] for c in COMPONENTS] for s in SCENARIOS])


class RewardService:
    def __init__(self, generator, ranker, ranker_meta: dict, city_vocab: list[str], cfg: RewardConfig | None = None,
                 pools: torch.Tensor | None = None):
        """``generator``: the frozen reference policy (its adapter defines relevance); ``ranker`` +
        ``ranker_meta``: the unified ranking model; ``city_vocab``: the sample tensors' city vocabulary;
        ``pools``: optional (scenarios, items) bool candidate pools (format checks membership)."""
        if ranker is None:
            raise ValueError("the ranking reward needs the unified ranking model: materialize ranking_model first")
        self.cfg = cfg or RewardConfig()
        if self.cfg.ranking_task not in TASKS:
            raise ValueError(f"ranking_task must be one of {TASKS}, not {self.cfg.ranking_task!r}")
        missing = [s for s in SCENARIOS if s not in self.cfg.weights]
        if missing:
            raise ValueError(f"reward weights missing for scenario(s) {missing}")
        self.gen, self.ranker, self.pools = generator.eval(), ranker.eval(), pools
        self.pad = generator.pad_item
        ranker_city = {c: i + 1 for i, c in enumerate(ranker_meta["profile_vocab_city"])}
        self.city_map = torch.tensor([0] + [ranker_city.get(c, 0) for c in city_vocab])
        self.weights = self.cfg.matrix()
        self.task = TASKS.index(self.cfg.ranking_task)

    @torch.no_grad()
    def score(self, batch: dict, items: torch.Tensor, rows: np.ndarray | None = None) -> dict[str, torch.Tensor]:
        """Rewards of ``items`` (B, G) item rows (-1: invalid) for the B samples of ``batch``: each component and
        ``total``, all (B, G). ``rows`` names the samples in errors."""
        n, g = items.shape
        valid = (items >= 0) & (items < self.pad)
        if self.pools is not None:
            valid &= self.pools[batch["scenario"][:, None].expand(-1, g), items.clamp(min=0)]
        safe = torch.where(valid, items, torch.full_like(items, self.pad))
        fmt = torch.where(valid, 0.0, self.cfg.format_penalty)
        _, query = self.gen.instruction(batch)
        q = F.normalize(self.gen.adapter(query), dim=-1)
        rel = torch.einsum("bd,bgd->bg", q, self.gen.item_adapter(safe)) * valid
        rank = torch.sigmoid(self.ranker(self._ranker_batch(batch, safe))[:, 0, :, self.task]) * valid
        level1 = self.gen.item_codes[safe][..., 0]
        same = (level1[:, :, None] == level1[:, None, :]) & valid[:, None, :]
        div = (1.0 / same.sum(-1).clamp(min=1)) * valid
        parts = {"format": fmt, "relevance": rel, "ranking": rank, "diversity": div}
        w = self.weights[batch["scenario"]]  # (B, components)
        parts["total"] = sum(w[:, i, None] * parts[c] for i, c in enumerate(COMPONENTS))
        bad = ~torch.isfinite(parts["total"]).all(1)
        if bad.any():
            where = np.flatnonzero(bad.numpy())
            names = where if rows is None else np.asarray(rows)[where]
            raise FloatingPointError(f"non-finite rewards for sample rows {names.tolist()[:20]}: stopping the step")
        return parts

    def _ranker_batch(self, batch: dict, items: torch.Tensor) -> dict:
        """The generator's sample tensors as one single-request ranking window with the items as candidates."""
        n, g = items.shape
        hist = self.ranker.cfg.history
        out = {f"profile_{k}": batch[f"profile_{k}"] for k in PROFILE_VOCABS}
        out["profile_city"] = self.city_map[batch["profile_city"]]
        out["history"] = batch["short_items"][:, -hist:]
        out["history_behaviors"] = batch["short_behaviors"][:, -hist:]
        out["scenario"], out["trigger"] = batch["scenario"][:, None], batch["trigger"][:, None]
        out["has_text"], out["text"] = batch["has_reasoning"][:, None], batch["reasoning"][:, None]
        out["candidates"], out["positions"] = items[:, None], torch.zeros(n, 1, g, dtype=torch.long)
        out["request_mask"] = torch.ones(n, 1, dtype=torch.bool)
        return out
