"""The OxyRec code location: assets, checks, jobs and resources."""

import dagster as dg

from assets.data import checks, processing, tables
from assets.model import pretrain
from assets.sid import encoded, versions

from .resources import resources_for

ASSETS = [*dg.load_assets_from_modules([tables, processing, encoded, pretrain]), *versions.ASSETS]
CHECKS = [*checks.CHECKS, *versions.CHECKS]

# In-process execution: one Spark session (one JVM) serves every step of a run.
main_job = dg.define_asset_job("main_job", selection=dg.AssetSelection.all(), executor_def=dg.in_process_executor,
                               description="The whole OxyRec asset graph on the configured dataset.")
data_job = dg.define_asset_job("data_job", selection=dg.AssetSelection.groups("data"),
                               executor_def=dg.in_process_executor,
                               description="Raw -> validated -> splits -> Swing -> training samples.")
generator_job = dg.define_asset_job("generator_job", selection=dg.AssetSelection.groups("generator"),
                                    executor_def=dg.in_process_executor,
                                    description="Pre-train the generator and evaluate it offline.")
sid_job = dg.define_asset_job("sid_job", selection=dg.AssetSelection.groups("sid"), executor_def=dg.in_process_executor,
                              description="Item encoding, V1-V4 item embeddings and codebooks, their comparison.")


def make_definitions(resources: dict) -> dg.Definitions:
    return dg.Definitions(assets=ASSETS, asset_checks=CHECKS, jobs=[main_job, data_job, sid_job, generator_job], resources=resources,
                          executor=dg.in_process_executor)


defs = make_definitions(resources_for())
