"""The OxyRec code location: assets, checks, jobs, the near-line sensor, the daily schedule and resources.

``SID_VERSION`` is the one place that picks the codebook the generator trains on:
``pretrained_checkpoint`` (and everything after it) depends on that partition of
``sid_codebooks`` only. ``OXY_SID_VERSION`` overrides it when the code location loads.
"""

import os

import dagster as dg

from assets.data import checks, processing, tables
from assets.model.ablation import ablation_assets
from assets.model.pretrain import generator_assets
from assets.post_training.ranking import ranking_assets
from assets.post_training.rl import rl_assets
from assets.reasoning import instructions, nearline
from assets.serving.deploy import serving_assets
from assets.sid import encoded, versions
from oxy_dagster.sid.versions import DEFAULT_VERSION

from .resources import resources_for

SID_VERSION = os.environ.get("OXY_SID_VERSION", DEFAULT_VERSION)
# A run of main_job or sid_job covers every SID version in one go (single-run backfill of the partitions).
ALL_SID_VERSIONS = {"dagster/asset_partition_range_start": versions.SID_VERSIONS.get_partition_keys()[0],
                    "dagster/asset_partition_range_end": versions.SID_VERSIONS.get_partition_keys()[-1]}


def _job(name: str, selection: dg.AssetSelection, description: str, tags: dict | None = None):
    # In-process execution: one Spark session (one JVM) serves every step of a run.
    return dg.define_asset_job(name, selection=selection, executor_def=dg.in_process_executor,
                               description=description, tags=tags)


main_job = _job("main_job", dg.AssetSelection.all() - dg.AssetSelection.groups("ablation", "rl_ablation"),
                "The whole OxyRec asset graph on the configured dataset, every SID version "
                "(the ablations have their own jobs).", ALL_SID_VERSIONS)
data_job = _job("data_job", dg.AssetSelection.groups("data"),
                "Raw -> validated -> splits -> Swing -> training samples.")
sid_job = _job("sid_job", dg.AssetSelection.groups("sid"),
               "Item encoding, V1-V4 item embeddings and codebooks, their comparison.", ALL_SID_VERSIONS)
generator_job = _job("generator_job", dg.AssetSelection.groups("generator"),
                     f"Pre-train the generator on SID {SID_VERSION} and evaluate it offline.")
ablation_job = _job("ablation_job", dg.AssetSelection.groups("ablation"),
                    "Seed Tables 5, 6, 7, 9 and a scale slice: one comparison table.")
post_training_job = _job("post_training_job", dg.AssetSelection.groups("post_training"),
                         "The unified ranking model, RL post-training and its evaluation next to the pretrained model.")
rl_ablation_job = _job("rl_ablation_job", dg.AssetSelection.groups("rl_ablation"),
                       "Seed Table 10 (GRPO / GSPO / SA-GCPO), Table 11 (SA-GCPO temperatures), Figure 7 (synthetic "
                       "share).")
serving_job = _job("serving_job", dg.AssetSelection.groups("serving"),
                   "Choose the generator to ship, export its bundle, register it as oxyrec@champion.")
reasoning_job = _job("reasoning_job", dg.AssetSelection.groups("reasoning"),
                     "Slow thinking: STP instruction table, query rewrites, every active user's instruction.")


def make_definitions(resources: dict, sid_version: str = SID_VERSION) -> dg.Definitions:
    return dg.Definitions(
        assets=[*dg.load_assets_from_modules([tables, processing, encoded, versions, instructions]),
                *generator_assets(sid_version), *ablation_assets(sid_version),
                *ranking_assets(sid_version), *rl_assets(sid_version),
                *serving_assets(sid_version, generators=["pretrained_checkpoint", "rl_checkpoint"])],
        asset_checks=checks.CHECKS,
        jobs=[main_job, data_job, sid_job, generator_job, ablation_job, reasoning_job, post_training_job,
              rl_ablation_job, serving_job, nearline.nearline_job],
        schedules=[nearline.daily_refresh_schedule(reasoning_job)],
        sensors=[nearline.nearline_instruction_sensor],
        resources=resources, executor=dg.in_process_executor)


defs = make_definitions(resources_for())
