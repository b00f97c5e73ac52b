"""Stage settings as typed dataclasses: one place for each default and its one-line explanation.

A stage's dataclass (``TrainConfig``, ``SwingConfig``, ...) declares each setting
with ``setting(default, help)``. The Dagster launchpad config of the asset that
runs the stage, and the README's table of settings, are both derived from it
(``assets/config.py``), so a default is written exactly once.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any


def setting(default: Any, help: str) -> Any:
    """A dataclass field with its default and a short explanation (shown in the launchpad and the README)."""
    return dataclasses.field(default=default, metadata={"help": help})


def from_dict(cls, values: dict):
    """An instance of the settings dataclass ``cls`` from ``values``, ignoring keys it has no field for (a saved
    config or a job spec written by another version)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def scalar_fields(cls) -> list[tuple[str, type, Any, str]]:
    """(name, type, default, help) of every int / float / str / bool field with a plain default."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if kind in (int, float, str, bool) and f.default is not dataclasses.MISSING:
            out.append((f.name, kind, f.default, f.metadata.get("help", "")))
    return out
