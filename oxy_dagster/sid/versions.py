"""SID versions V1-V4 (seed Table 2) as four configurations of one code path."""

from __future__ import annotations

from dataclasses import dataclass, field

from .contrastive import TrainConfig
from .fusion import FusionConfig


@dataclass
class SidVersion:
    name: str
    description: str
    fusion: FusionConfig | None = None  # None: the frozen text embedding itself (no training)
    train: TrainConfig = field(default_factory=TrainConfig)
    use_image: bool = True  # only where the catalogue has images


VERSIONS: dict[str, SidVersion] = {
    "V1": SidVersion("V1", "text only: frozen sentence embedding of title + brand + category", None,
                     use_image=False),
    "V2": SidVersion("V2", "text (+image) through an MLP fusion, contrastive on Swing pairs",
                     FusionConfig(kind="mlp", use_structured=False), TrainConfig(sources=("swing",))),
    "V3": SidVersion("V3", "Q-Former fusion of text (+image) + category/brand/price, contrastive on Swing pairs",
                     FusionConfig(kind="qformer"), TrainConfig(sources=("swing",))),
    "V4": SidVersion("V4", "Q-Former fusion, multi-source: Swing + query-to-item + semantic peers",
                     FusionConfig(kind="qformer"), TrainConfig(sources=("swing", "query", "peers"))),
}


# The codebook the generator and everything downstream of it use unless told otherwise (the SID stage still
# builds all four versions, so they can be compared). One place: the Dagster lineage, the CLI and the ablations.
DEFAULT_VERSION = "V3"


def get_version(name: str) -> SidVersion:
    if name not in VERSIONS:
        raise ValueError(f"unknown SID version {name!r}; known: {sorted(VERSIONS)}")
    return VERSIONS[name]
