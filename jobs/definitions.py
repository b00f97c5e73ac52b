"""The OxyRec code location: assets, checks, jobs and resources."""

import dagster as dg

from assets.data import checks, processing, tables

from .resources import resources_for

data_assets = dg.load_assets_from_modules([tables, processing])

# In-process execution: one Spark session (one JVM) serves every step of a run.
main_job = dg.define_asset_job("main_job", selection=dg.AssetSelection.all(), executor_def=dg.in_process_executor,
                               description="The whole OxyRec asset graph on the configured dataset.")
data_job = dg.define_asset_job("data_job", selection=dg.AssetSelection.groups("data"),
                               executor_def=dg.in_process_executor,
                               description="Raw -> validated -> splits -> Swing -> training samples.")

defs = dg.Definitions(
    assets=data_assets,
    asset_checks=checks.CHECKS,
    jobs=[main_job, data_job],
    resources=resources_for(),
    executor=dg.in_process_executor,
)
