"""Atomic parquet/JSON writes and recorded schemas.

Every table is written to a temporary sibling directory and renamed into place,
so a crash never leaves a half-written table where a reader would find it.
Beside each table we write ``_schema.json`` (column names and Spark types) so
downstream checks can detect drift.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def _swap_into_place(tmp: Path, path: Path) -> None:
    """Replace directory ``path`` with ``tmp`` (old copy removed only after the rename)."""
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def spark_schema_dict(df) -> dict[str, str]:
    return {f.name: f.dataType.simpleString() for f in df.schema.fields}


def write_table(df, path: str | Path, partitions: int | None = None) -> dict[str, str]:
    """Write a Spark DataFrame as parquet atomically and record its schema."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    out = df.coalesce(partitions) if partitions else df
    out.write.mode("overwrite").parquet(str(tmp))
    schema = spark_schema_dict(df)
    atomic_write_json(tmp / "_schema.json", schema)
    _swap_into_place(tmp, path)
    return schema


def write_pandas(pdf, path: str | Path) -> Path:
    """Write a pandas DataFrame to a single parquet file atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    pdf.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path


def read_schema(path: str | Path) -> dict[str, str]:
    return json.loads((Path(path) / "_schema.json").read_text())
