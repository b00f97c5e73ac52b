"""The OxyRec code location: assets, checks, jobs and resources."""

import dagster as dg

from assets.data import checks, processing, tables
from assets.model import ablation, pretrain
from assets.reasoning import instructions, nearline
from assets.sid import encoded, versions

from .resources import resources_for

ASSETS = [*dg.load_assets_from_modules([tables, processing, encoded, pretrain, ablation, instructions]),
          *versions.ASSETS]
CHECKS = [*checks.CHECKS, *versions.CHECKS]


def _job(name: str, selection: dg.AssetSelection, description: str):
    # In-process execution: one Spark session (one JVM) serves every step of a run.
    return dg.define_asset_job(name, selection=selection, executor_def=dg.in_process_executor,
                               description=description)


JOBS = [
    _job("main_job", dg.AssetSelection.all() - dg.AssetSelection.groups("ablation"),
         "The whole OxyRec asset graph on the configured dataset (the ablations have their own job)."),
    _job("data_job", dg.AssetSelection.groups("data"), "Raw -> validated -> splits -> Swing -> training samples."),
    _job("sid_job", dg.AssetSelection.groups("sid"),
         "Item encoding, V1-V4 item embeddings and codebooks, their comparison."),
    _job("generator_job", dg.AssetSelection.groups("generator"), "Pre-train the generator and evaluate it offline."),
    _job("ablation_job", dg.AssetSelection.groups("ablation"),
         "Seed Tables 5, 6, 7, 9 and a scale slice: one comparison table."),
    _job("reasoning_job", dg.AssetSelection.groups("reasoning"),
         "Slow thinking: STP instruction table, query rewrites, every active user's instruction."),
]
SCHEDULES = [nearline.daily_refresh_schedule(JOBS[-1])]
SENSORS = [nearline.nearline_instruction_sensor]


def make_definitions(resources: dict) -> dg.Definitions:
    return dg.Definitions(assets=ASSETS, asset_checks=CHECKS, jobs=[*JOBS, nearline.nearline_job],
                          schedules=SCHEDULES, sensors=SENSORS, resources=resources,
                          executor=dg.in_process_executor)


defs = make_definitions(resources_for())
