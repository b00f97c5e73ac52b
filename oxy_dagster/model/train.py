"""Pre-training loop for the generator: AdamW, warmup + cosine LR, deterministic batches, resumable.

The batch of step ``s`` is a pure function of (seed, s): epoch permutations
come from ``default_rng(seed + epoch)``, so a run killed after checkpoint ``s``
and resumed replays exactly the same batches, dropout masks (the torch RNG is
checkpointed) and losses.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ..settings import from_dict
from .averaging import WeightAverage
from .checkpoint import latest_checkpoint
from .config import TrainConfig
from .engine import make_engine
from .optim import budget_lr_lambda


def batch_indices(n: int, batch_size: int, seed: int, step: int, order=None) -> np.ndarray:
    """Sample positions of global batch ``step``: consecutive slices of one permutation per epoch (``order(epoch)``,
    default a seeded uniform permutation), so a resumed run draws the same batches."""
    start = step * batch_size
    out, pos = [], start
    while len(out) < batch_size:
        epoch, offset = divmod(pos, n)
        perm = order(epoch) if order else np.random.default_rng(seed + epoch).permutation(n)
        take = perm[offset: offset + batch_size - len(out)]
        out.extend(take.tolist())
        pos += len(take)
    return np.asarray(out)


class LengthGroupedOrder:
    """An epoch's permutation in which each batch holds samples of similar history length.

    The seeded uniform permutation is cut into megabatches of ``group`` batches; each megabatch is sorted by
    length and cut into batches; all batches are then shuffled (seeded), so the order of lengths is random."""

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int, group: int):
        self.lengths, self.batch_size, self.seed, self.group = np.asarray(lengths), batch_size, seed, group
        self._cached: tuple[int, np.ndarray] | None = None

    def __call__(self, epoch: int) -> np.ndarray:
        if self._cached is None or self._cached[0] != epoch:
            rng = np.random.default_rng(self.seed + epoch)
            perm = rng.permutation(len(self.lengths))
            mega = self.group * self.batch_size
            pieces = []
            for i in range(0, len(perm), mega):
                chunk = perm[i:i + mega]
                chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
                pieces += [chunk[j:j + self.batch_size] for j in range(0, len(chunk), self.batch_size)]
            self._cached = (epoch, np.concatenate([pieces[k] for k in rng.permutation(len(pieces))]))
        return self._cached[1]


def recency_factors(users: np.ndarray, timestamps: np.ndarray, strength: float) -> np.ndarray:
    """Per-sample loss multipliers ``1 + strength x q``, q the sample's place in its user's training samples by
    timestamp (0 the user's first, 1 the user's latest; ties share their mean place, so a user's only sample is 0.5),
    rescaled to mean 1 so the loss keeps its scale. Per user, not global: held-out targets are each user's next
    items, and a dataset may carry order alone (the Amazon 5-core files: timestamp = start + k days)."""
    if strength < 0:
        raise ValueError(f"recency_weight must be >= 0, got {strength}")
    if len(users) == 0 or strength == 0:
        return np.ones(len(users), np.float32)
    frame = pd.DataFrame({"user": np.asarray(users), "ts": np.asarray(timestamps, dtype=np.float64)})
    by_user = frame.groupby("user", sort=False)["ts"]
    n = by_user.transform("size").to_numpy()
    rank = by_user.rank(method="average").to_numpy()
    q = np.where(n > 1, (rank - 1) / np.maximum(n - 1, 1), 0.5)
    f = 1 + strength * q
    return (f / f.mean()).astype(np.float32)


def train(model, data, rows: np.ndarray, cfg: TrainConfig, ckpt_dir: str | Path, extra: dict | None = None,
          log: Callable[[dict], None] | None = None, stop_at: int | None = None,
          on_change: str = "restart") -> list[dict]:
    """Train on sample ``rows`` of ``data``; resumes from ``ckpt_dir/latest`` when present.

    ``stop_at`` ends the run early at that step (after its checkpoint), as a kill would.
    ``on_change``: when the latest checkpoint was written under another schedule or model
    config, ``"restart"`` moves it aside and starts fresh; ``"error"`` refuses.
    """
    torch.manual_seed(cfg.seed)
    n_params = sum(p.numel() for p in model.parameters())  # before an engine may split the experts
    engine = make_engine(model, cfg)
    lead = engine.rank == 0
    start = 0
    ckpt = latest_checkpoint(ckpt_dir)
    if ckpt is not None and _changed(ckpt, cfg, model, extra):
        if on_change != "restart":
            raise ValueError(f"{ckpt} was written under another training or model config; "
                             "use a new checkpoint directory or on_change='restart'")
        stale = Path(ckpt_dir).with_name(f"{Path(ckpt_dir).name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
        _barrier(engine)
        if lead:
            Path(ckpt_dir).rename(stale)
            warnings.warn(f"training or model config changed since {ckpt}: kept the old run in {stale}, "
                          "starting fresh", stacklevel=2)
        _barrier(engine)
        ckpt = None
    if ckpt is not None:
        state = json.loads((ckpt / "state.json").read_text())
        if extra and state.get("sid_fingerprint") not in (None, extra.get("sid_fingerprint")):
            raise ValueError(f"{ckpt} was trained on another SID codebook ({state.get('sid_fingerprint')} != "
                             f"{extra.get('sid_fingerprint')}); use a new checkpoint directory")
        resumed = engine.load(ckpt)
        start, trained_before = resumed["step"], float(resumed.get("trained_s", 0.0))
    else:
        trained_before = 0.0
    average = _weight_average(model, cfg, ckpt)
    clock = _TrainingClock(engine, trained_before)
    if cfg.budget_s > 0:  # the cosine follows the seconds trained (this run's and the checkpoint's)
        engine.sched.lr_lambdas = [budget_lr_lambda(cfg, clock.trained_s)] * len(engine.sched.base_lrs)
    order = None
    if cfg.group_by_length > 0:
        lengths = (data.tensors["short_items"][torch.as_tensor(rows)] != model.pad_item).sum(1).numpy()
        order = LengthGroupedOrder(lengths, cfg.batch_size, cfg.seed, cfg.group_by_length)
    boost = None
    if cfg.recency_weight > 0:
        if "timestamp" not in data.meta:
            raise ValueError("recency_weight needs the samples' timestamp column; rebuild the samples table")
        boost = np.ones(len(data), np.float32)
        boost[rows] = recency_factors(data.meta.user_id.to_numpy()[rows], data.meta.timestamp.to_numpy()[rows],
                                      cfg.recency_weight)
        boost = torch.from_numpy(boost)
    tokens_per_sample = data.tensors["short_items"].shape[1] + len(model.cfg.code_vocab) + 3
    history: list[dict] = []
    model.train()
    t_last, last_step = time.perf_counter(), start
    t_start = time.perf_counter()
    bar = tqdm(range(start, cfg.steps), desc="pretrain", initial=start, mininterval=2,
               total=None if cfg.budget_s > 0 else cfg.steps,  # a budget run ends on the clock, not at a step
               disable=not lead)
    for step in bar:
        idx = rows[batch_indices(len(rows), cfg.batch_size, cfg.seed, step, order)]
        mine = idx[engine.rank::engine.world]  # each process takes its slice of the global batch
        batch = data.batch(mine)
        if boost is not None:
            batch["weight"] = batch["weight"] * boost[torch.as_tensor(mine)]
        out = engine.forward(batch)
        engine.step(out["loss"])
        if average is not None:
            average.update(model)
        losses = {k: out[k].detach() for k in ("loss", "ntp", "balance", "q2i", "dense", "dense_ahead")
                  if k in out}
        record = {"step": step + 1, **mean_over_ranks(engine, losses), "lr": engine.lr}
        history.append(record)
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            dt = time.perf_counter() - t_last
            sps = (done - last_step) * cfg.batch_size / max(dt, 1e-9)
            record.update(samples_per_s=sps, tokens_per_s=sps * tokens_per_sample,
                          mfu=6 * n_params * tokens_per_sample * sps / cfg.peak_flops)
            t_last, last_step = time.perf_counter(), done
            bar.set_postfix(loss=f"{record['loss']:.3f}")
            if log and lead:
                log(record)
        clock.tick()
        out_of_time = _agree(engine, (cfg.max_wall_s > 0 and time.perf_counter() - t_start >= cfg.max_wall_s)
                             or (cfg.budget_s > 0 and clock.trained_s() >= cfg.budget_s))
        if done % cfg.ckpt_every == 0 or done == cfg.steps or done == stop_at or out_of_time:
            engine.save(Path(ckpt_dir), done, {"config": asdict(cfg), "trained_s": clock.trained_s(),
                                               **(extra or {})}, averaged=average.tensors() if average else None)
        if (stop_at is not None and done >= stop_at) or out_of_time:
            break
    engine.finish()  # native MoE layers back in place (all experts gathered), ready to evaluate
    if average is not None:  # the caller evaluates what a checkpoint's reader gets: the averaged weights
        average.copy_to(model)
    model.eval()
    return history


def _weight_average(model, cfg: TrainConfig, ckpt: Path | None) -> WeightAverage | None:
    """The run's weight average (``cfg.ema_decay`` > 0), restored from the checkpoint being resumed."""
    if cfg.ema_decay <= 0:
        return None
    if cfg.moe == "deepspeed":
        raise ValueError("ema_decay averages native-layout weights: not with moe='deepspeed' (experts split)")
    average = WeightAverage(model, cfg.ema_decay)
    if ckpt is not None and not average.restore(ckpt):
        warnings.warn(f"{ckpt} has no weight average: it restarts from the resumed weights", stacklevel=3)
    return average


class _TrainingClock:
    """Seconds spent training, across resumes; on several ranks the slowest rank's (all agree on one value)."""

    def __init__(self, engine, before: float):
        self.engine, self.before, self.t0, self.now = engine, before, time.perf_counter(), before

    def tick(self) -> None:
        elapsed = self.before + time.perf_counter() - self.t0
        if self.engine.world > 1:
            import torch.distributed as dist

            t = torch.tensor([elapsed], dtype=torch.float64, device=getattr(self.engine, "device", "cpu"))
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            elapsed = float(t.item())
        self.now = elapsed

    def trained_s(self) -> float:
        return self.now


def _barrier(engine) -> None:
    if engine.world > 1:
        import torch.distributed as dist

        dist.barrier()


def mean_over_ranks(engine, values: dict[str, torch.Tensor]) -> dict[str, float]:
    """Each loss averaged over the ranks' slices: the global batch's figure, comparable across world sizes."""
    if engine.world == 1:
        return {k: float(v) for k, v in values.items()}
    import torch.distributed as dist

    device = getattr(engine, "device", "cpu")  # NCCL reduces GPU tensors only
    t = torch.stack([torch.as_tensor(v).float().to(device) for v in values.values()])
    dist.all_reduce(t)
    return {k: float(x) / engine.world for k, x in zip(values, t)}


def _agree(engine, flag: bool) -> bool:
    """True on every rank when any rank says so (so all processes stop at the same step)."""
    if engine.world == 1:
        return flag
    import torch.distributed as dist

    t = torch.tensor([int(flag)], device=getattr(engine, "device", "cpu"))
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def _changed(ckpt: Path, cfg: TrainConfig, model, extra: dict | None) -> bool:
    state = json.loads((ckpt / "state.json").read_text())
    saved = from_dict(TrainConfig, state.get("config", {}))
    if saved.schedule_key() != cfg.schedule_key():
        return True
    if extra and "model" in extra and json.dumps(state.get("model"), sort_keys=True) != \
            json.dumps(extra["model"], sort_keys=True):  # tuples and lists serialise alike
        return True
    return False
