"""Atomic writes for every artifact kind, and recorded table schemas.

One mechanism: an artifact is written to a temporary sibling (file or directory)
and renamed into place (``os.replace``), so a crash never leaves a half-written
file where a reader would find it, and a failed write leaves the previous version.

* ``atomic_file(path)``: yields a temporary path beside ``path``; renamed on success.
* ``atomic_dir(path)``: the same for a directory (Spark tables, checkpoints).
* ``write_json`` / ``write_text`` / ``write_parquet`` / ``write_safetensors`` /
  ``save_figure`` / ``write_table`` (Spark) are thin uses of those two.

Beside each Spark table we write ``_schema.json`` (column names and Spark types)
so downstream checks can detect drift.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """A temporary file path beside ``path``; moved onto ``path`` when the block succeeds, removed if it fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        with open(tmp, "rb") as fh:  # the data reaches the disk before the name does
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def swap_dir_into_place(tmp: Path, path: Path) -> None:
    """Replace directory ``path`` by the complete directory ``tmp`` (the old copy is removed after the rename)."""
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """A temporary directory beside ``path``, swapped into place when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        swap_dir_into_place(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | Path, text: str) -> Path:
    with atomic_file(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    return write_text(path, json.dumps(obj, indent=indent, sort_keys=indent is not None, default=str))


def write_parquet(pdf, path: str | Path) -> Path:
    """A pandas DataFrame as one parquet file."""
    with atomic_file(path) as tmp:
        pdf.to_parquet(tmp, index=False)
    return Path(path)


def write_csv(pdf, path: str | Path, **kwargs) -> Path:
    with atomic_file(path) as tmp:
        pdf.to_csv(tmp, **kwargs)
    return Path(path)


def write_safetensors(path: str | Path, tensors: dict, metadata: dict | None = None) -> Path:
    """torch tensors or numpy arrays (not mixed) as one safetensors file; metadata values become strings."""
    meta = {k: str(v) for k, v in (metadata or {}).items()} or None
    with atomic_file(path) as tmp:
        first = next(iter(tensors.values()), None)
        if first is not None and type(first).__module__.startswith("torch"):
            from safetensors.torch import save_file

            save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)
        else:
            import numpy as np
            from safetensors.numpy import save_file

            save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp), metadata=meta)
    return Path(path)


def save_figure(fig, path: str | Path, dpi: int = 100) -> Path:
    """A matplotlib figure as PNG; the figure is closed afterwards."""
    import matplotlib.pyplot as plt

    try:
        with atomic_file(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    return Path(path)


def spark_schema_dict(df) -> dict[str, str]:
    return {f.name: f.dataType.simpleString() for f in df.schema.fields}


def write_table(df, path: str | Path, partitions: int | None = None) -> dict[str, str]:
    """Write a Spark DataFrame as parquet atomically and record its schema."""
    with atomic_dir(path) as tmp:
        out = df.coalesce(partitions) if partitions else df
        out.write.mode("overwrite").parquet(str(tmp))
        schema = spark_schema_dict(df)
        write_json(tmp / "_schema.json", schema)
    return schema


def read_schema(path: str | Path) -> dict[str, str]:
    return json.loads((Path(path) / "_schema.json").read_text())
