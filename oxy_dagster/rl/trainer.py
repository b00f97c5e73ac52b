"""The RL loop: rollouts from the current policy, rewards, advantages, policy updates through the engine.

Each step draws a batch of training samples (a pure function of (seed, step), like pre-training), of which
a ``synthetic_ratio`` share are synthetic (seed Figure 7: a user's profile and history with the policy's own
candidates, scored by the ranker, no real target). For every sample the current policy samples a group of
``group`` distinct items by trie-constrained beam sampling; the reward service scores them and the
sample's real target item; advantages are normalised within the group; SA-GCPO's positives are the items
whose reward reaches the target's (on synthetic samples, which have none: a non-negative advantage).
The engine then takes ``updates`` optimisation steps on that rollout (the importance ratios move away from
1 after the first). Dropout stays off, so the behaviour and the updated policy differ only by the updates.

Checkpoints go through the same engines as pre-training (atomic, pickle-free, per-rank under DeepSpeed), so
a killed run resumes to the same step with the same batches and sampling noise; a run on another SID
codebook or another ranker is refused.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..model.checkpoint import latest_checkpoint
from ..model.config import TrainConfig
from ..model.engine import make_engine
from ..model.fast_decoding import BeamDecoder, SampleConfig
from ..model.train import batch_indices, mean_over_ranks
from ..model.trie import DenseTrie
from ..settings import setting
from .losses import OBJECTIVES, group_advantages
from .policy import PolicyObjective, token_logprobs


@dataclass
class RLConfig:
    """Post-training (``rl_checkpoint``): rollouts, the objective and its schedule."""

    objective: str = setting("sa_gcpo", f"policy objective: {', '.join(OBJECTIVES)}")
    steps: int = setting(100, "RL steps (one rollout each)")
    batch_size: int = setting(32, "samples per step")
    group: int = setting(8, "items sampled per sample (G)")
    updates: int = setting(2, "optimisation steps per rollout")
    lr: float = setting(2e-5, "AdamW learning rate")
    clip: float = setting(0.2, "GRPO / GSPO clip range")
    tau_pos: float = setting(1.0, "SA-GCPO gate temperature for items at least as good as the target")
    tau_neg: float = setting(1.05, "SA-GCPO gate temperature for the others (faster decay)")
    kl_weight: float = setting(0.01, "weight of KL(policy || pretrained) (0 disables)")
    sft_weight: float = setting(0.1, "weight of the next-token loss on real targets (0 disables)")
    synthetic_ratio: float = setting(0.0, "share of synthetic samples per batch (seed Figure 7)")
    temperature: float = setting(1.0, "sampling temperature of the rollouts")
    top_p: float = setting(1.0, "nucleus of the rollouts")
    ckpt_every: int = setting(25, "steps between checkpoints")
    seed: int = setting(0, "seed of batches and sampling")
    engine: str = setting("torch", "training engine: torch or deepspeed")
    zero_stage: int = setting(1, "ZeRO stage when engine=deepspeed")
    processes: int = setting(1, "RL processes (engine=deepspeed, ZeRO 0-2); > 1: torchrun ranks in a subprocess, "
                                "each rolling out its share of every batch")

    def train_config(self) -> TrainConfig:
        return TrainConfig(steps=self.steps * self.updates, batch_size=self.batch_size, lr=self.lr, warmup=1,
                           min_lr_ratio=1.0, weight_decay=0.0, seed=self.seed, engine=self.engine,
                           zero_stage=self.zero_stage, ckpt_every=10**9)


def _rollout(policy, trie: DenseTrie, service, reference, batch: dict, real: torch.Tensor, cfg: RLConfig,
             seed: int, rows: np.ndarray) -> tuple[dict, dict]:
    """Sample the groups, score them, and return the ``rl_*`` tensors of the update plus diagnostics."""
    items, _ = BeamDecoder(policy, trie).decode(batch, beam=cfg.group, topk=cfg.group, mode="sample",
                                                sample=SampleConfig(cfg.temperature, 0, cfg.top_p, seed))
    rewards = service.score(batch, items, rows)
    target = service.score(batch, batch["target"][:, None], rows)["total"]
    valid = items >= 0
    adv = group_advantages(rewards["total"])
    positive = torch.where(real[:, None], rewards["total"] >= target, adv >= 0)
    with torch.no_grad():
        logp_old, _ = token_logprobs(policy, batch, items)
        logp_ref = token_logprobs(reference, batch, items)[0] if cfg.kl_weight > 0 else logp_old
    out = {"rl_items": items, "rl_valid": valid, "rl_adv": adv, "rl_positive": positive, "rl_logp_old": logp_old,
           "rl_logp_ref": logp_ref, "rl_real": real}
    w = valid.float()
    stats = {f"reward/{k}": float((v * w).sum() / w.sum().clamp(min=1)) for k, v in rewards.items()}
    stats.update({"reward/target": float(target.mean()), "advantage_std": float(adv[valid].std()),
                  "beats_target": float(((rewards["total"] >= target) & real[:, None]).float().sum()
                                        / max(1, int(real.sum()) * cfg.group)),
                  "distinct_level1": float(torch.tensor([len(set(policy.item_codes[r[r >= 0], 0].tolist()))
                                                         for r in items]).float().mean())})
    return out, stats


def train_rl(policy, reference, service, trie: DenseTrie, data, rows: np.ndarray, cfg: RLConfig,
             ckpt_dir: str | Path, extra: dict, log=None, stop_at: int | None = None, evaluate=None,
             eval_every: int = 0) -> list[dict]:
    """Run (or resume) RL on sample ``rows``; ``evaluate(policy) -> dict`` is called every ``eval_every`` steps."""
    if cfg.objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, not {cfg.objective!r}")
    torch.manual_seed(cfg.seed)
    policy.eval()  # no dropout: rollouts and updates see the same function
    objective = PolicyObjective(policy, cfg.objective, cfg.clip, cfg.tau_pos, cfg.tau_neg, cfg.kl_weight,
                                cfg.sft_weight)
    engine = make_engine(objective, cfg.train_config())
    policy.eval()
    start, history = 0, []
    ckpt = latest_checkpoint(ckpt_dir)
    if ckpt is not None:
        state = json.loads((ckpt / "state.json").read_text())
        for key in ("sid_fingerprint", "ranker_fingerprint"):
            if state.get(key) != extra.get(key):
                raise ValueError(f"{ckpt} belongs to another {key.split('_')[0]} ({state.get(key)} != "
                                 f"{extra.get(key)}); use a new RL directory")
        start = engine.load(ckpt)["step"]
        history = state.get("history", [])
    n_syn = int(round(cfg.synthetic_ratio * cfg.batch_size))
    rank, world = engine.rank, engine.world
    t0 = time.perf_counter()
    for step in range(start, cfg.steps):
        idx = rows[batch_indices(len(rows), cfg.batch_size, cfg.seed, step)]
        real = torch.ones(len(idx), dtype=torch.bool)
        if n_syn:  # synthetic samples: other users' contexts, no real target to compare with
            rng = np.random.default_rng([cfg.seed, step, 1])
            idx[:n_syn] = rows[rng.integers(0, len(rows), n_syn)]
            real[:n_syn] = False
        idx, real = idx[rank::world], real[rank::world]  # each process rolls out its slice of the global batch
        batch = data.batch(idx)
        rl, stats = _rollout(policy, trie, service, reference, batch, real, cfg,
                             (cfg.seed * 1_000_003 + step) * world + rank, idx)
        for _ in range(cfg.updates):
            out = engine.forward({**batch, **rl})
            engine.step(out["loss"])
        figures = {"loss": out["loss"].detach(), **stats, **{k: float(v) for k, v in out.items() if k != "loss"}}
        record = {"step": step + 1, **mean_over_ranks(engine, figures), "wall_s": time.perf_counter() - t0}
        if rank == 0 and evaluate is not None and eval_every and ((step + 1) % eval_every == 0
                                                                  or step + 1 == cfg.steps):
            record.update(evaluate(policy))  # rank 0 alone (ZeRO 0-2 keep whole weights on every rank)
        history.append(record)
        if log and rank == 0:
            log(record)
        done = step + 1
        if done % cfg.ckpt_every == 0 or done == cfg.steps or done == stop_at:
            engine.save(Path(ckpt_dir), done, {"config": asdict(cfg), "history": history, **extra})
        if stop_at is not None and done >= stop_at:
            break
    engine.finish()
    return history
