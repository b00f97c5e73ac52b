"""Asset checks for the data stage: schemas, counts and split invariants."""

import json

import dagster as dg
import pyarrow.parquet as pq

from oxy_dagster.data.contract import CONTRACTS
from oxy_dagster.io import read_schema
from oxy_dagster.paths import DataPaths

from ..resources import DatasetResource


def _schema_check(table: str):
    @dg.asset_check(asset=table, name=f"{table}_schema", description=f"{table} has every contract column")
    def check(paths: dg.ResourceParam[DataPaths]) -> dg.AssetCheckResult:
        path = paths.table(table)
        recorded = read_schema(path)
        on_disk = set(pq.read_schema(next(path.glob("*.parquet"))).names)
        missing = [c for c in CONTRACTS[table].columns if c not in recorded or c not in on_disk]
        return dg.AssetCheckResult(passed=not missing, metadata={"missing": missing, "columns": len(recorded)})

    return check


def _quarantine_check(table: str):
    @dg.asset_check(asset=table, name=f"{table}_quarantine", description="bad-row fraction within the policy")
    def check(dataset: DatasetResource, paths: dg.ResourceParam[DataPaths]) -> dg.AssetCheckResult:
        summary = json.loads((paths.validated / "summary.json").read_text())[table]
        ok = summary["rows_good"] > 0 and summary["bad_fraction"] <= dataset.max_bad_fraction
        return dg.AssetCheckResult(passed=ok, metadata={"rows_good": summary["rows_good"],
                                                        "rows_bad": summary["rows_bad"]})

    return check


@dg.asset_check(asset="loo_splits", description="every user with >= 3 interactions has one valid and one test row")
def loo_splits_one_target_per_user(paths: dg.ResourceParam[DataPaths]) -> dg.AssetCheckResult:
    df = pq.read_table(paths.splits, columns=["user_id", "split", "seq_len"]).to_pandas()
    eligible = df[df.seq_len >= 3]
    per_user = eligible.groupby("user_id").split.agg(lambda s: ((s == "test").sum(), (s == "valid").sum()))
    bad = int((per_user != (1, 1)).sum())
    return dg.AssetCheckResult(passed=bad == 0 and len(eligible) > 0,
                               metadata={"users": int(df.user_id.nunique()), "users_violating": bad})


@dg.asset_check(asset="training_samples", description="Table 1 rules: triggers only where the scenario has one")
def training_samples_follow_table1(paths: dg.ResourceParam[DataPaths]) -> dg.AssetCheckResult:
    df = pq.read_table(paths.samples, columns=["scenario", "trigger_item_id", "instruction_source"]).to_pandas()
    trig_wrong = int((df.trigger_item_id.notna() & df.scenario.isin(["homepage", "search"])).sum())
    query_wrong = int(((df.instruction_source == "query") & (df.scenario != "search")).sum())
    return dg.AssetCheckResult(passed=len(df) > 0 and trig_wrong == 0 and query_wrong == 0,
                               metadata={"samples": len(df), "trigger_violations": trig_wrong,
                                         "query_violations": query_wrong})


CHECKS = [_schema_check(t) for t in ("items", "users", "events", "impressions")] + \
         [_quarantine_check(t) for t in ("items", "users", "events")] + \
         [loo_splits_one_target_per_user, training_samples_follow_table1]
