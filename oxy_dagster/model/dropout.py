"""Dropout whose mask comes from a counter-based hash on CPU: the same Bernoulli(1 - p) keep mask, 2.5-3.7x cheaper
(``benchmarks/dropout_cpu.py``).

PyTorch's CPU dropout draws each mask element from the Mersenne Twister one at a time (``bernoulli_``,
about 15 ns per element on the 2-core Xeon benchmark machine): profiled on Beauty, the generator's 20 dropout
calls per step took 38 % of a training step, more than every matrix multiply together. Here a mask element
is a pure function of its position and two 31-bit keys drawn from torch's default generator per call: the
murmur3 finaliser (an avalanching bijection on 32 bits) of ``(position ^ key0) * golden + key1``, kept
when the result clears the threshold ``p * 2^32``. A handful of vectorised in-place int32 passes
(``benchmarks/dropout_cpu.py``) replaces the sequential draw, as Philox does in cuRAND and Triton.

* The keys come from torch's generator, so ``torch.manual_seed`` fixes the masks and a checkpointed RNG
  state replays them on resume, as with ``F.dropout``.
* On an accelerator, and under ``dropout_backend("torch")``, this is ``F.dropout`` itself (CUDA's
  Philox is already fused and fast).
* Attention dropout needs the probabilities: ``attention`` computes them explicitly when training with
  dropout (the path ``scaled_dot_product_attention`` takes on CPU when it drops anything).
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

_GOLDEN, _M1, _M2 = -1640531535, -2048144789, -1028477387  # 0x9E3779B1, 0x85EBCA6B, 0xC2B2AE35 as int32
_CHUNK = 1 << 18  # elements per pass of the hash (two 1 MB int32 buffers, within L2)
_state = {"backend": "hash"}


@contextlib.contextmanager
def dropout_backend(name: str):
    """``"hash"`` (default) or ``"torch"`` (``F.dropout`` everywhere) inside the block: the benchmark's baseline."""
    if name not in ("hash", "torch"):
        raise ValueError(f"dropout backend must be 'hash' or 'torch', not {name!r}")
    before, _state["backend"] = _state["backend"], name
    try:
        yield
    finally:
        _state["backend"] = before


def _shift_xor_(h: torch.Tensor, tmp: torch.Tensor, bits: int) -> torch.Tensor:
    """``h ^= h >>> bits`` (a logical shift: the arithmetic one's sign bits are masked off), through ``tmp``."""
    torch.bitwise_right_shift(h, bits, out=tmp)
    return h.bitwise_xor_(tmp.bitwise_and_((1 << (32 - bits)) - 1))


def keep_mask(shape: torch.Size | tuple, p: float, keys: tuple[int, int]) -> torch.Tensor:
    """Bool mask of ``shape``, each element kept with probability ``1 - p``, a pure function of (position, keys).

    Computed in cache-sized chunks through two reused int32 buffers: whole-tensor passes over a 10 M-element
    activation would stream every intermediate through memory and page-fault on each fresh allocation."""
    n = math.prod(shape)
    out = torch.empty(n, dtype=torch.bool)
    h, tmp = torch.empty(min(n, _CHUNK), dtype=torch.int32), torch.empty(min(n, _CHUNK), dtype=torch.int32)
    threshold = min(int(round(p * 2**32)) - 2**31, 2**31 - 1)  # the hash is uniform on [-2^31, 2^31)
    for start in range(0, n, _CHUNK):
        m = min(_CHUNK, n - start)
        hm, tm = h[:m], tmp[:m]
        torch.arange(start, start + m, dtype=torch.int32, out=hm)
        hm.bitwise_xor_(keys[0]).mul_(_GOLDEN).add_(keys[1])  # int32 arithmetic wraps
        _shift_xor_(hm, tm, 16).mul_(_M1)
        _shift_xor_(hm, tm, 13).mul_(_M2)
        torch.ge(_shift_xor_(hm, tm, 16), threshold, out=out[start:start + m])
    return out.view(shape)


class _ScaleKept(torch.autograd.Function):
    """``x * mask * scale`` saving only the bool mask (one byte per element) for the backward pass."""

    @staticmethod
    def forward(ctx, x, mask, scale: float):
        ctx.save_for_backward(mask)
        ctx.scale = scale
        return x.mul(mask).mul_(scale)

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad.mul(mask).mul_(ctx.scale), None, None


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``F.dropout`` with the hash mask on CPU (see the module docstring)."""
    if not training or p <= 0.0:
        return x
    if p >= 1.0:
        return x * 0.0
    if x.device.type != "cpu" or _state["backend"] == "torch":
        return F.dropout(x, p, True)
    keys = torch.randint(0, 2**31 - 1, (2,)).tolist()
    return _ScaleKept.apply(x, keep_mask(x.shape, p, keys), 1.0 / (1.0 - p))


class Dropout(nn.Module):
    """``nn.Dropout`` with ``dropout``'s mask."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def attention(q, k, v, attn_mask=None, dropout_p: float = 0.0, training: bool = False) -> torch.Tensor:
    """``scaled_dot_product_attention`` whose attention-probability dropout takes ``dropout``'s mask on CPU.

    ``attn_mask``: bool, True where a query may attend (broadcast over batch and heads). Without dropout, or on
    an accelerator, this is ``F.scaled_dot_product_attention`` (its fused kernels)."""
    p = dropout_p if training else 0.0
    if p <= 0.0 or q.device.type != "cpu" or _state["backend"] == "torch":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p)
    scores = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    return dropout(scores.softmax(-1), p) @ v
