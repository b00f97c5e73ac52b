"""Near-line path: a sensor over the event source launches ``nearline_job``; a daily schedule refreshes all.

The sensor only looks: it counts events whose 5-minute window has closed beyond
the store's committed cursor and requests a run keyed by (committed cursor,
end of the ready events). The job does the work and commits the cursor in the
store after the write (``oxy_dagster/reasoning/nearline.py``), so the store,
not the sensor, is the source of truth: a failed run is simply requested again
once more events arrive (or re-executed from the UI).
"""

import dagster as dg
import numpy as np
import pyarrow.parquet as pq

from oxy_dagster.paths import DataPaths
from oxy_dagster.reasoning.intents import item_lookup
from oxy_dagster.reasoning.nearline import pending, process_nearline

from ..resources import EventSourceResource, InstructionStoreResource, LLMResource, MlflowResource


@dg.op
def nearline_update(context: dg.OpExecutionContext, paths: dg.ResourceParam[DataPaths], llm: LLMResource,
                    instruction_store: InstructionStoreResource, event_source: EventSourceResource,
                    mlflow_tracking: MlflowResource) -> dict:
    """Consume closed windows of high-value events and regenerate one instruction per user per window."""
    from oxy_dagster.sid.text import shared_text_encoder

    items_path = paths.table("items")
    titles = {}
    if items_path.exists():
        items = pq.read_table(items_path, columns=["item_id", "title", "category_path"]).to_pandas()
        titles = item_lookup(items)
    store = instruction_store.open()
    try:
        with mlflow_tracking.run(context, "reasoning", "nearline") as run, llm.session() as c:
            stats = process_nearline(event_source.open(), store, c, shared_text_encoder(), titles,
                                     window_s=event_source.window_s)
            lat = stats.pop("latencies_s", [])
            if lat:
                stats.update(event_to_store_p50_s=float(np.percentile(lat, 50)),
                             event_to_store_p99_s=float(np.percentile(lat, 99)))
            run.metrics({**stats, **{f"llm_{k}": v for k, v in c.stats.as_dict().items()}}, to_metadata=False)
    finally:
        store.close()
    context.add_output_metadata({k: v for k, v in stats.items() if isinstance(v, (int, float, str))})
    return stats


@dg.job(executor_def=dg.in_process_executor,
        description="Near-line: regenerate instructions for users with high-value events in closed 5-minute windows")
def nearline_job():
    nearline_update()


@dg.sensor(job=nearline_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED,
           description="Watches the event source; requests nearline_job when a 5-minute window has closed")
def nearline_instruction_sensor(context: dg.SensorEvaluationContext, event_source: EventSourceResource,
                                instruction_store: InstructionStoreResource):
    store = instruction_store.open()
    try:
        ready, committed, upto = pending(event_source.open(), store, window_s=event_source.window_s)
    finally:
        store.close()
    if not ready:
        return dg.SkipReason(f"no closed window beyond cursor {committed}")
    context.update_cursor(upto)  # for display only; the store's cursor decides what is consumed
    return dg.RunRequest(run_key=f"nearline-{committed}-{upto}", tags={"ready_events": str(ready)})


def daily_refresh_schedule(reasoning_job) -> dg.ScheduleDefinition:
    """All slow-thinking assets every day at 03:00 (STP table, query rewrites, every active user)."""
    return dg.ScheduleDefinition(name="daily_reasoning_refresh", job=reasoning_job, cron_schedule="0 3 * * *",
                                 default_status=dg.DefaultScheduleStatus.STOPPED,
                                 run_config={"ops": {"user_instructions": {"config": {"max_users": 0}}}})
