"""DeepSpeed ZeRO training engine with pickle-free checkpoints.

* Without a launcher (one CPU process) the process group is set up here: rank 0
  of 1 on gloo, with DeepSpeed's shared-memory comm op switched off so nothing
  compiles (see ../shared/STACK.md). Under ``torchrun`` / ``deepspeed`` the
  launcher's RANK / WORLD_SIZE / MASTER_* are used as they are.
* The client optimizer is torch AdamW (no fused-op build); ZeRO stage, gradient
  clipping and bf16 (on GPU only; fp32 on CPU) come from ``TrainConfig``.
* DeepSpeed's own checkpoints are pickles. Here a checkpoint is ``step-<n>/``
  with ``model.safetensors`` (full weights, gathered under ZeRO-3, written by
  rank 0), one ``optimizer-rank<r>.safetensors`` + ``.json`` per rank (every
  tensor of that rank's ZeRO optimizer partition, the rest of its state dict as
  JSON; DeepSpeed-internal objects such as the loss scaler are taken from the
  live optimizer on load), ``optimizer-full.safetensors`` (the same state
  gathered per parameter: fp32 master weight, ``exp_avg``, ``exp_avg_sq``, and
  Adam's step; written by rank 0) and ``state.json``. It is assembled in a
  temporary directory and renamed by rank 0 after a barrier, like the plain
  engine's.
* Resume on the same world size and stage restores each rank's partition as it
  was. On another world size or ZeRO stage (2 processes -> 1, 1 -> 2, stage 1 ->
  3) every rank reads the per-parameter file and keeps its own new partition of
  it (``_load_resharded``): the trajectory continues from the same weights and
  moments; only the dropout streams differ. Expert-parallel checkpoints resume
  on their own layout only.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..io import swap_dir_into_place
from .averaging import AVERAGE_FILE
from .checkpoint import write_latest
from .optim import make_optimizer


def launcher_vars() -> dict[str, str]:
    """What a launcher would export, for a process started without one: rank 0 of a group of one on a free port.

    Empty under ``torchrun`` / ``deepspeed`` (RANK already set): the launcher's values are used as they are.
    """
    if "RANK" in os.environ:
        return {}
    from ..net import free_port

    return dict(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))


@contextlib.contextmanager
def scoped_env(values: dict[str, str]):
    """``values`` in ``os.environ`` inside the block only; the process environment is restored afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _in_launcher_env(method):
    """Run an engine method with the engine's launcher variables (DeepSpeed reads LOCAL_RANK while it trains)."""
    @functools.wraps(method)
    def wrapped(self, *args, **kwargs):
        with scoped_env(self._env):
            return method(self, *args, **kwargs)
    return wrapped


def init_process_group() -> tuple[int, int]:
    """Join (or, for a process without a launcher, create) the distributed group; returns (rank, world)."""
    import torch.distributed as dist

    os.environ.setdefault("DS_ACCELERATOR", "cuda" if torch.cuda.is_available() else "cpu")
    import deepspeed
    import deepspeed.ops

    if not dist.is_initialized():
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
        deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


ADAM_KEYS = ("exp_avg", "exp_avg_sq")


def _full_hp(p: torch.nn.Parameter, opt, key: str | None = None) -> torch.Tensor:
    """The whole fp32 master weight (``key=None``) or optimizer state of ``p``, gathered from the ZeRO partitions
    (a collective), or read from the plain optimizer under stage 0 in fp32."""
    if hasattr(p, "ds_id") or hasattr(p, "_hp_mapping"):
        from deepspeed.utils import safe_get_full_fp32_param, safe_get_full_optimizer_state

        return safe_get_full_optimizer_state(p, key) if key else safe_get_full_fp32_param(p)
    if key is None:
        return p.detach()
    state = opt.state.get(p, {})
    return state[key] if key in state else torch.zeros_like(p, dtype=torch.float32)


def _set_full_hp(p: torch.nn.Parameter, opt, value: torch.Tensor, key: str | None = None) -> None:
    """Store the whole ``value`` as ``p``'s master weight / optimizer state; each rank keeps its own partition."""
    if hasattr(p, "ds_id") or hasattr(p, "_hp_mapping"):
        from deepspeed.utils import safe_set_full_fp32_param, safe_set_full_optimizer_state

        if key:
            safe_set_full_optimizer_state(p, value, key)
        else:
            safe_set_full_fp32_param(p, value)
    elif key is not None:
        opt.state[p][key] = value.to(p.dtype).clone()


def _adam_state_for(inner, flat: torch.Tensor) -> dict:
    """The Adam state of one flat fp32 partition, created as AdamW would start it (zeros, step 0) if missing."""
    state = inner.state[flat]
    if "exp_avg" not in state:
        state.update(step=torch.tensor(0.0), exp_avg=torch.zeros_like(flat), exp_avg_sq=torch.zeros_like(flat))
    return state


def _link_optimizer_fragments(opt) -> None:
    """Make the ``safe_*`` accessors work on an engine at any point, even before its first step.

    ZeRO 1-2 and the bf16 optimizer: DeepSpeed (0.18) links a parameter's ``_hp_mapping`` to its Adam-state
    fragments lazily after the first optimizer step, and then only where a state exists: the first parameter
    group's (the later groups step afterwards). ZeRO-3 reads the flat partitions' states directly, which do
    not exist before the first step either. Here every partition gets its state and every group is linked.
    """
    inner = getattr(opt, "optimizer", None)
    if inner is None:
        return
    if hasattr(opt, "fp32_partitioned_groups_flat"):  # ZeRO-3
        for flat in opt.fp32_partitioned_groups_flat:
            _adam_state_for(inner, flat)
        return
    lp_groups = getattr(opt, "bit16_groups", None) or getattr(opt, "bf16_groups", None)
    flats = getattr(opt, "single_partition_of_fp32_groups", None) or getattr(opt, "fp32_groups_flat_partition", None)
    if not lp_groups or flats is None:
        return
    from deepspeed.utils import lazy_init_hp_params_optimizer_state

    for lp, flat in zip(lp_groups, flats):
        _adam_state_for(inner, flat)
        lazy_init_hp_params_optimizer_state(lp, flat, inner.state)


def _inner_optimizer(opt):
    """The torch optimizer under DeepSpeed's ZeRO / bf16 wrapper (the client optimizer itself at stage 0)."""
    return getattr(opt, "optimizer", opt)


def _adam_step(opt) -> float:
    for st in _inner_optimizer(opt).state.values():
        if "step" in st:
            return float(st["step"])
    return 0.0


def _set_adam_step(opt, step: float) -> None:
    inner = _inner_optimizer(opt)
    targets = list(inner.state.values())
    if not targets:  # stage 0 before its first step: the plain optimizer's per-parameter states
        targets = [inner.state[p] for group in inner.param_groups for p in group["params"]]
    for st in targets:
        st["step"] = torch.tensor(step) if torch.is_tensor(st.get("step", torch.tensor(0.0))) else step


def _flatten(obj, path: str, tensors: dict):
    if torch.is_tensor(obj):
        tensors[path] = obj.detach().contiguous().cpu()
        return {"__tensor__": path}
    if isinstance(obj, dict):
        return {"__dict__": [[k, _flatten(v, f"{path}/{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {"__list__": [_flatten(v, f"{path}[{i}]", tensors) for i, v in enumerate(obj)]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return {"__live__": path}  # a DeepSpeed object (loss scaler, enum, fragment map): restored from the live one


def _unflatten(node, tensors: dict, live: dict):
    if isinstance(node, dict):
        if "__tensor__" in node:
            return tensors[node["__tensor__"]]
        if "__dict__" in node:
            return {k: _unflatten(v, tensors, live) for k, v in node["__dict__"]}
        if "__list__" in node:
            return [_unflatten(v, tensors, live) for v in node["__list__"]]
        return live.get(node["__live__"])  # another rank's fragment map has no live twin here: unused
    return node


def _live_objects(obj, path: str = "", out: dict | None = None) -> dict:
    out = {} if out is None else out
    if isinstance(obj, dict):
        for k, v in obj.items():
            _live_objects(v, f"{path}/{k}", out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _live_objects(v, f"{path}[{i}]", out)
    out[path] = obj
    return out


class DeepSpeedEngine:
    """ZeRO 0-3 through ``deepspeed.initialize``. Without a launcher its RANK / LOCAL_RANK / MASTER_* exist
    only while one of its methods runs, so nothing else in the process sees them."""

    def __init__(self, model: torch.nn.Module, cfg):
        self._env = launcher_vars()
        self.model = model
        self._start(model, cfg)

    @_in_launcher_env
    def _start(self, model: torch.nn.Module, cfg) -> None:
        import deepspeed

        self.rank, self.world = init_process_group()
        if cfg.batch_size % self.world:
            raise ValueError(f"batch_size {cfg.batch_size} is not divisible by world size {self.world}")
        self.bf16 = torch.cuda.is_available()
        self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if self.bf16 else torch.device("cpu")
        self.expert_parallel = 0  # > 0: deepspeed.moe layers swapped in, experts split over this many ranks
        if cfg.moe == "deepspeed":
            from . import expert_parallel

            ep = cfg.expert_parallel or self.world
            if cfg.zero_stage == 3:
                raise ValueError("deepspeed.moe expert parallelism runs under ZeRO 0-2 (DeepSpeed refuses ZeRO-3)")
            if self.world % ep:
                raise ValueError(f"expert_parallel {ep} does not divide the world size {self.world}")
            # expert-parallel groups are runs of consecutive ranks (DeepSpeed's default layout)
            if expert_parallel.swap_in(model, ep, self.rank % ep):
                self.expert_parallel = ep
        opt, sched = make_optimizer(model, cfg, moe_groups=self.expert_parallel > 0)
        self.zero_stage = cfg.zero_stage
        config = {"train_micro_batch_size_per_gpu": cfg.batch_size // self.world, "gradient_accumulation_steps": 1,
                  "gradient_clipping": cfg.grad_clip, "zero_optimization": {"stage": cfg.zero_stage},
                  "bf16": {"enabled": self.bf16}, "steps_per_print": 10**9, "wall_clock_breakdown": False}
        self.engine, self.opt, _, self.sched = deepspeed.initialize(model=model, optimizer=opt, lr_scheduler=sched,
                                                                    config=config)

    @_in_launcher_env
    def forward(self, batch: dict) -> dict:
        dtype = torch.bfloat16 if self.bf16 else torch.float32
        batch = {k: (v.to(self.device, dtype) if v.is_floating_point() else v.to(self.device))
                 for k, v in batch.items()}
        return self.engine(batch)

    @_in_launcher_env
    def step(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss)
        self.engine.step()  # clips, steps the optimizer and the LR schedule, zeroes the gradients

    @property
    def lr(self) -> float:
        return self.sched.get_last_lr()[0]

    def _full_state_dict(self) -> dict:
        """Every weight in the native layout (a collective under ZeRO-3 or expert parallelism)."""
        if self.zero_stage == 3:
            import deepspeed

            with deepspeed.zero.GatheredParameters(list(self.model.parameters())):
                return {k: v.detach().float().cpu().clone() for k, v in self.model.state_dict().items()}
        state = {k: v.detach().float().cpu().contiguous() for k, v in self.model.state_dict().items()}
        if self.expert_parallel:
            from .expert_parallel import native_state_dict

            state = native_state_dict(self.model, state)
        return state

    def _load_weights(self, weights: dict) -> None:
        if self.expert_parallel:
            from .expert_parallel import load_native_state_dict

            load_native_state_dict(self.model, weights)
        else:
            self.model.load_state_dict(weights)

    @_in_launcher_env
    def finish(self) -> None:
        """After training: native MoE layers back in place with every expert, so the model evaluates anywhere."""
        if self.expert_parallel:
            from .expert_parallel import swap_out

            swap_out(self.model, self._full_state_dict())
            self.expert_parallel = 0

    @_in_launcher_env
    def save(self, root: Path, step: int, extra: dict, averaged: dict | None = None) -> Path:
        import torch.distributed as dist

        root = Path(root)
        tmp, final = root / f".tmp-step-{step:08d}", root / f"step-{step:08d}"
        weights = self._full_state_dict()  # a collective under ZeRO-3: every rank takes part
        if self.rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        dist.barrier()
        full = self._full_optimizer_state()  # a collective under ZeRO 1-3: every rank takes part
        tensors: dict = {"rng.torch": torch.get_rng_state()}
        skeleton = _flatten(self.opt.state_dict(), "", tensors)
        save_file(tensors, str(tmp / f"optimizer-rank{self.rank}.safetensors"))
        (tmp / f"optimizer-rank{self.rank}.json").write_text(json.dumps(skeleton))
        if self.rank == 0:
            save_file(weights, str(tmp / "model.safetensors"))
            if averaged is not None:  # every rank holds the same average (ZeRO 0-2 replicate the weights)
                save_file(averaged, str(tmp / AVERAGE_FILE))
            if full:
                save_file(full, str(tmp / "optimizer-full.safetensors"))
            state = {"step": step, "engine": "deepspeed", "zero_stage": self.zero_stage, "world_size": self.world,
                     "expert_parallel": self.expert_parallel,
                     "scheduler": self.sched.state_dict(), **extra}
            (tmp / "state.json").write_text(json.dumps(state, default=str))
        dist.barrier()
        if self.rank == 0:
            swap_dir_into_place(tmp, final)
            write_latest(root, final)
        dist.barrier()
        return final

    def _full_optimizer_state(self) -> dict:
        """Per parameter: fp32 master weight and Adam moments, un-partitioned (the world-size-free layout)."""
        if self.expert_parallel:
            return {}
        _link_optimizer_fragments(self.opt)
        out = {}
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                out[f"fp32/{name}"] = _full_hp(p, self.opt).float().cpu().contiguous()
                for key in ADAM_KEYS:
                    out[f"{key}/{name}"] = _full_hp(p, self.opt, key).float().cpu().contiguous()
        out["step"] = torch.tensor(float(_adam_step(self.opt)))
        return out

    def _load_resharded(self, ckpt: Path, saved_world: int) -> None:
        """Weights and moments from ``optimizer-full.safetensors``, each rank keeping its own partition."""
        path = ckpt / "optimizer-full.safetensors"
        if self.expert_parallel or not path.exists():
            raise ValueError(f"{ckpt} has no per-parameter optimizer file (an expert-parallel or older checkpoint): "
                             "it resumes only with the world size and ZeRO stage that wrote it")
        full = load_file(str(path))
        import deepspeed

        with (deepspeed.zero.GatheredParameters(list(self.model.parameters()), modifier_rank=0)
              if self.zero_stage == 3 else contextlib.nullcontext()):  # the working weights (rank 0's, broadcast)
            for name, p in self.model.named_parameters():
                if p.requires_grad:
                    p.data.copy_(full[f"fp32/{name}"].to(p.device, p.dtype))
        _link_optimizer_fragments(self.opt)
        for name, p in self.model.named_parameters():  # the fp32 master weights and moments, partitioned anew
            if p.requires_grad:
                _set_full_hp(p, self.opt, full[f"fp32/{name}"].to(self.device))
                for key in ADAM_KEYS:
                    _set_full_hp(p, self.opt, full[f"{key}/{name}"].to(self.device), key)
        _set_adam_step(self.opt, float(full["step"]))
        rng = load_file(str(ckpt / f"optimizer-rank{min(self.rank, saved_world - 1)}.safetensors"))["rng.torch"]
        torch.set_rng_state(rng)

    @_in_launcher_env
    def load(self, ckpt: Path) -> dict:
        state = json.loads((ckpt / "state.json").read_text())
        if state.get("expert_parallel", 0) != self.expert_parallel:
            raise ValueError(f"{ckpt} was written with expert parallel {state.get('expert_parallel', 0)} over "
                             f"{state.get('world_size')} process(es); this run has expert parallel "
                             f"{self.expert_parallel} over {self.world}")
        if state.get("world_size") != self.world or state.get("zero_stage") != self.zero_stage:
            self._load_resharded(ckpt, int(state.get("world_size", 1)))
            self.sched.load_state_dict(state["scheduler"])
            # the optimizer's own state_dict, which carries each group's current LR, is not what was loaded here:
            # the groups still hold the first step's warmup LR, so the next step would take it
            for group, lr in zip(self.sched.optimizer.param_groups, self.sched.get_last_lr()):
                group["lr"] = lr
            return state
        weights = load_file(str(ckpt / "model.safetensors"))
        if self.zero_stage == 3:
            import deepspeed

            with deepspeed.zero.GatheredParameters(list(self.model.parameters()), modifier_rank=0):
                if self.rank == 0:
                    self.model.load_state_dict(weights)
        else:
            self._load_weights(weights)
        live = _live_objects(self.opt.state_dict())
        shards = []
        for r in range(self.world):
            tensors = load_file(str(ckpt / f"optimizer-rank{r}.safetensors"))
            shards.append(_unflatten(json.loads((ckpt / f"optimizer-rank{r}.json").read_text()), tensors, live))
            if r == self.rank:
                torch.set_rng_state(tensors["rng.torch"])
        if self.zero_stage == 0:
            self.opt.load_state_dict(shards[self.rank])
        else:
            self.opt.load_state_dict(shards, load_optimizer_states=True, load_from_fp32_weights=True)
        self.sched.load_state_dict(state["scheduler"])
        return state
