"""Launchpad config classes derived from the core's stage dataclasses, and the README's settings table.

Each asset's ``Config`` is built from the dataclass(es) that hold the stage's
defaults (``oxy_dagster.settings.setting``), so a default and its explanation are
written once. ``python -m assets.config`` prints the README table; a test checks
that the README carries the current one.
"""

from __future__ import annotations

import sys

import dagster as dg
import pydantic

from oxy_dagster.data.samples import SampleConfig
from oxy_dagster.data.swing import SwingConfig
from oxy_dagster.model.ablation import AblationConfig
from oxy_dagster.model.config import EvalConfig, ModelChoice, TrainConfig
from oxy_dagster.ranking.model import RankerConfig
from oxy_dagster.reasoning.intents import IntentConfig, RewriteConfig
from oxy_dagster.reasoning.stp import STPConfig
from oxy_dagster.rewards.service import RewardConfig
from oxy_dagster.rl.ablation import RLAblationConfig
from oxy_dagster.rl.trainer import RLConfig
from oxy_dagster.serving.deploy import DeployConfig
from oxy_dagster.settings import scalar_fields
from oxy_dagster.sid.build import CodebookConfig, EmbeddingConfig


def derived_config(name: str, *sources, exclude: tuple[str, ...] = ()) -> type[dg.Config]:
    """A ``dg.Config`` whose fields are the scalar fields of the given dataclasses (first one wins on a clash)."""
    fields: dict = {}
    for cls in sources:
        for fname, kind, default, help_ in scalar_fields(cls):
            if fname not in fields and fname not in exclude:
                fields[fname] = (kind, pydantic.Field(default=default, description=help_))
    doc = "Settings of " + ", ".join(c.__name__ for c in sources) + " (defaults live there)."
    model = pydantic.create_model(name, __base__=dg.Config, __doc__=doc, **fields)
    model.__sources__ = sources
    return model


SwingParams = derived_config("SwingParams", SwingConfig)
SampleParams = derived_config("SampleParams", SampleConfig)
EmbeddingParams = derived_config("EmbeddingParams", EmbeddingConfig)
CodebookParams = derived_config("CodebookParams", CodebookConfig)
STPParams = derived_config("STPParams", STPConfig)
RewriteParams = derived_config("RewriteParams", RewriteConfig)
IntentParams = derived_config("IntentParams", IntentConfig, exclude=("version",))
PretrainParams = derived_config("PretrainParams", ModelChoice, TrainConfig,
                                exclude=("ckpt_every", "log_every", "peak_flops", "min_lr_ratio"))
EvalParams = derived_config("EvalParams", EvalConfig)
AblationParams = derived_config("AblationParams", AblationConfig, exclude=("sid_version",))
DeployParams = derived_config("DeployParams", DeployConfig)
RankerParams = derived_config("RankerParams", RankerConfig)
RLParams = derived_config("RLParams", RLConfig, RewardConfig)
RLAblationParams = derived_config("RLAblationParams", RLAblationConfig, RLConfig,
                                  exclude=("objective", "tau_pos", "tau_neg", "synthetic_ratio", "seed", "ckpt_every"))

# asset -> its launchpad config, in pipeline order (the README's table follows this order)
BY_ASSET: dict[str, type[dg.Config]] = {
    "swing_pairs": SwingParams, "training_samples": SampleParams, "item_embeddings": EmbeddingParams,
    "sid_codebooks": CodebookParams, "stp_instruction_table": STPParams, "query_rewrites": RewriteParams,
    "user_instructions": IntentParams, "pretrained_checkpoint": PretrainParams, "offline_eval": EvalParams,
    "ablation_report": AblationParams, "ranking_model": RankerParams, "rl_checkpoint": RLParams,
    "rl_ablation_report": RLAblationParams, "deployed_model": DeployParams,
}


def build(source, config: dg.Config, **extra):
    """An instance of the core dataclass ``source`` from the asset's config (fields it does not hold keep defaults)."""
    names = {f[0] for f in scalar_fields(source)}
    return source(**{k: v for k, v in config.model_dump().items() if k in names}, **extra)


README_START, README_END = "<!-- settings:start -->", "<!-- settings:end -->"


def settings_markdown() -> str:
    lines = ["| asset | setting | default | what it does |", "|---|---|---|---|"]
    for asset, cls in BY_ASSET.items():
        for fname, info in cls.model_fields.items():
            help_ = (info.description or "").replace("|", "\\|")
            lines.append(f"| `{asset}` | `{fname}` | `{info.default!r}` | {help_} |")
    return "\n".join(lines)


def readme_with_settings(readme: str) -> str:
    """``readme`` with the table between the settings markers replaced by the current one."""
    head, rest = readme.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    return f"{head}{README_START}\n{settings_markdown()}\n{README_END}{tail}"


if __name__ == "__main__":
    if "--write-readme" in sys.argv:  # python -m assets.config --write-readme
        from oxy_dagster.paths import REPO_ROOT

        path = REPO_ROOT / "README.md"
        path.write_text(readme_with_settings(path.read_text()))
    else:
        sys.stdout.write(settings_markdown() + "\n")
