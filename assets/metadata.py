"""Helpers to turn results into Dagster metadata (numbers, tables, embedded plots)."""

from __future__ import annotations

import base64
from pathlib import Path

import dagster as dg


def numeric(d: dict, prefix: str = "") -> dict:
    """Keep the int/float entries of ``d`` (flattening one level of nesting)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            out[f"{prefix}{k}"] = v
        elif isinstance(v, dict):
            out.update(numeric(v, prefix=f"{prefix}{k}/"))
    return out


def plot(path: str | Path) -> dg.MetadataValue:
    """Embed a PNG so it shows in the asset's metadata in the Dagster UI."""
    b64 = base64.b64encode(Path(path).read_bytes()).decode()
    return dg.MetadataValue.md(f"![{Path(path).name}](data:image/png;base64,{b64})")
