"""Expert parallelism through ``deepspeed.moe``: the engine swaps each native MoE FFN for a DeepSpeed one.

The model is always built with the native :class:`~.layers.MoEFFN` (every expert
on every rank). ``DeepSpeedEngine`` with ``TrainConfig(moe="deepspeed")`` replaces
each of them by :class:`DeepSpeedMoEFFN`: the same router and the same top-k
routing (DeepSpeed's gate with its Gumbel second-expert sampling and token dropping
switched off, so the maths match the native layer), but this rank holds only its
``n_experts / ep_size`` experts and tokens travel to their expert's rank by
all-to-all. DeepSpeed keeps expert gradients out of the data-parallel all-reduce
and gives them their own ZeRO partitions.

Checkpoints stay in the native layout: :func:`native_state_dict` gathers every
rank's experts under their global index, and :func:`load_native_state_dict`
takes this rank's slice back, so a checkpoint written by 2 expert-parallel
processes loads into a one-process evaluator like any other.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from .layers import FFN, MoEFFN

_EXPERT = re.compile(r"^(?P<pre>.*)\.moe\.deepspeed_moe\.experts\.deepspeed_experts\.(?P<i>\d+)\.(?P<rest>.+)$")
_ROUTER = ".moe.deepspeed_moe.gate.wg.weight"


class DeepSpeedMoEFFN(nn.Module):
    """A ``deepspeed.moe.layer.MoE`` holding experts ``[ep_rank * L, (ep_rank + 1) * L)`` of a native layer."""

    def __init__(self, native: MoEFFN, ep_size: int, ep_rank: int):
        super().__init__()
        from deepspeed.moe.layer import MoE

        n = len(native.experts)
        if n % ep_size:
            raise ValueError(f"{n} experts cannot be split over expert-parallel size {ep_size}")
        if native.top_k not in (1, 2):
            raise ValueError(f"deepspeed.moe routes to 1 or 2 experts, not {native.top_k}")
        first = native.experts[0].net
        d, d_ff, p = first[0].in_features, first[0].out_features, first[2].p
        self.n_experts, self.ep_size, self.ep_rank, self.local = n, ep_size, ep_rank, n // ep_size
        self.top_k, self.ffn_shape = native.top_k, (d, d_ff, p)
        self.moe = MoE(d, FFN(d, d_ff, p), num_experts=n, ep_size=ep_size, k=native.top_k, min_capacity=0,
                       drop_tokens=False, use_rts=False, top2_2nd_expert_sampling=False)
        with torch.no_grad():
            self.moe.deepspeed_moe.gate.wg.weight.copy_(native.router.weight)
            for i, expert in enumerate(self.moe.deepspeed_moe.experts.deepspeed_experts):
                expert.load_state_dict(native.experts[ep_rank * self.local + i].state_dict())

    def forward(self, x):
        out, balance, _ = self.moe(x)
        return out, balance


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attr, module)


def swap_in(model: nn.Module, ep_size: int, ep_rank: int) -> int:
    """Replace every native MoE FFN of ``model`` in place; returns how many were replaced."""
    targets = [(name, m) for name, m in model.named_modules() if isinstance(m, MoEFFN)]
    for name, native in targets:
        _replace(model, name, DeepSpeedMoEFFN(native, ep_size, ep_rank))
    return len(targets)


def swap_out(model: nn.Module, state: dict) -> None:
    """Put native MoE FFNs back, with the (gathered, native-layout) weights in ``state``."""
    for name, m in _layers(model).items():
        d, d_ff, p = m.ffn_shape
        native = MoEFFN(d, d_ff, m.n_experts, m.top_k, p)
        prefix = f"{name}."
        native.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
        _replace(model, name, native)


def _layers(model: nn.Module) -> dict[str, DeepSpeedMoEFFN]:
    return {name: m for name, m in model.named_modules() if isinstance(m, DeepSpeedMoEFFN)}


def _native_key(key: str, layers: dict[str, DeepSpeedMoEFFN], ep_rank: int | None = None) -> str:
    """The native-layout name of a DeepSpeed-layout key; an expert's global index counts it as held by
    ``ep_rank`` (default: this rank)."""
    if key.endswith(_ROUTER):
        return key[: -len(_ROUTER)] + ".router.weight"
    m = _EXPERT.match(key)
    if m is None:
        return key
    layer = layers[m["pre"]]
    rank = layer.ep_rank if ep_rank is None else ep_rank
    return f"{m['pre']}.experts.{rank * layer.local + int(m['i'])}.{m['rest']}"


def native_state_dict(model: nn.Module, state: dict) -> dict:
    """``state`` (this rank's DeepSpeed-layout state dict) in the native layout, every expert gathered.

    A collective when experts are split: every rank of the expert-parallel group must call it.
    """
    import torch.distributed as dist

    layers = _layers(model)
    out = {}
    for key, value in state.items():
        m = _EXPERT.match(key)
        layer = layers[m["pre"]] if m else None
        if layer is None or layer.ep_size == 1:
            out[_native_key(key, layers)] = value
            continue
        parts = [torch.empty_like(value) for _ in range(layer.ep_size)]
        dist.all_gather(parts, value.contiguous(), group=layer.moe.deepspeed_moe.ep_group)
        for r, part in enumerate(parts):
            out[_native_key(key, layers, r)] = part
    return out


def load_native_state_dict(model: nn.Module, native: dict) -> None:
    """Load native-layout weights into a model whose MoE layers were swapped in: this rank's experts only."""
    layers = _layers(model)
    model.load_state_dict({key: native[_native_key(key, layers)] for key in model.state_dict()})
