"""Validate raw tables against the contract with Spark, quarantining bad rows.

Raw files are read with every column as a string, so that nothing is coerced
to null on the way in. Each row keeps its source file and 1-based data-row
number; every failing rule contributes ``"<field>: <reason>"``. Bad rows go to a
quarantine parquet with those reasons; the good rows are cast to typed columns.
A table fails only when its bad fraction exceeds the policy, with an error
that names the file, row and field of the first offending rows.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ..io import write_table
from .contract import CONTRACTS, OPTIONAL_TABLES, TableContract, ValidationPolicy

CORRUPT = "_corrupt_record"


class DataValidationError(ValueError):
    """Raised when a table's bad-row fraction exceeds the policy."""


@dataclass
class ValidationResult:
    table: str
    good: DataFrame
    total: int
    bad: int
    quarantine_path: str
    reasons: dict[str, int]

    @property
    def bad_fraction(self) -> float:
        return self.bad / self.total if self.total else 0.0


def _open_text(path: Path):
    return gzip.open(path, "rt") if path.suffix == ".gz" else open(path)


def _format(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    if path.is_dir() or name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "json"
    if name.endswith((".csv", ".tsv")):
        return "csv"
    raise ValueError(f"{path}: unsupported table format (use .csv, .tsv, .jsonl or .parquet)")


def read_raw(spark: SparkSession, path: str | Path, contract: TableContract) -> DataFrame:
    """Read a raw table with all contract columns as strings plus _source_file and _row."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{contract.name} table not found: {path}")
    fmt = _format(path)
    if fmt == "csv":
        sep = "\t" if ".tsv" in path.name.lower() else ","
        with _open_text(path) as fh:
            header = [h.strip() for h in fh.readline().rstrip("\n").split(sep)]
        schema = T.StructType([T.StructField(h, T.StringType()) for h in header]
                              + [T.StructField(CORRUPT, T.StringType())])
        df = spark.read.csv(str(path), header=True, sep=sep, schema=schema, mode="PERMISSIVE",
                            columnNameOfCorruptRecord=CORRUPT, enforceSchema=True, multiLine=False)
    elif fmt == "json":
        schema = T.StructType([T.StructField(c, T.StringType()) for c in contract.columns]
                              + [T.StructField(CORRUPT, T.StringType())])
        df = spark.read.json(str(path), schema=schema, mode="PERMISSIVE", columnNameOfCorruptRecord=CORRUPT)
    else:
        df = spark.read.parquet(str(path))
        df = df.select(*[F.col(c).cast("string").alias(c) for c in df.columns])
        df = df.withColumn(CORRUPT, F.lit(None).cast("string"))
    missing = [c for c in contract.required if c not in df.columns]
    if missing:
        raise DataValidationError(f"{path}: {contract.name} table lacks required column(s) {missing}; "
                                  f"found {sorted(c for c in df.columns if c != CORRUPT)}")
    for c in contract.columns:
        if c not in df.columns:
            df = df.withColumn(c, F.lit(None).cast("string"))
    df = df.withColumn("_source_file", F.lit(str(path))).withColumn("_mid", F.monotonically_increasing_id())
    df = df.withColumn("_row", F.row_number().over(Window.partitionBy("_source_file").orderBy("_mid")))
    return df.select(*contract.columns, CORRUPT, "_source_file", "_row")


def _blank(c):
    return c.isNull() | (F.trim(c) == "")


def _rule_errors(contract: TableContract) -> list:
    """One Column per rule: null when the rule passes, else '<field>: <reason>'."""
    errs = [F.when(F.col(CORRUPT).isNotNull(), F.lit("row: malformed record (wrong number of fields or bad quoting)"))]
    for f in contract.fields:
        c = F.col(f.name)
        if f.required:
            errs.append(F.when(_blank(c), F.lit(f"{f.name}: missing required value")))
        present = ~_blank(c)
        if f.kind == "float":
            num = c.try_cast("double")
            errs.append(F.when(present & num.isNull(), F.concat(F.lit(f"{f.name}: not a number '"), c, F.lit("'"))))
            if f.min_value is not None:
                errs.append(F.when(present & (num < f.min_value),
                                   F.concat(F.lit(f"{f.name}: below {f.min_value} '"), c, F.lit("'"))))
        elif f.kind == "int":
            num = F.trim(c).try_cast("long")
            errs.append(F.when(present & num.isNull(), F.concat(F.lit(f"{f.name}: not an integer '"), c, F.lit("'"))))
            if f.min_value is not None:
                errs.append(F.when(present & (num < f.min_value),
                                   F.concat(F.lit(f"{f.name}: below {f.min_value:g} '"), c, F.lit("'"))))
        elif f.kind == "timestamp":
            errs.append(F.when(present & _parse_ts(c).isNull(),
                               F.concat(F.lit(f"{f.name}: cannot parse '"), c, F.lit("' as a timestamp"))))
        elif f.kind == "enum":
            errs.append(F.when(present & ~F.trim(c).isin(*f.allowed),
                               F.concat(F.lit(f"{f.name}: '"), c, F.lit(f"' not in {list(f.allowed)}"))))
    return errs


def _parse_ts(c):
    s = F.trim(c)
    epoch = s.try_cast("double")
    return F.when(epoch.isNotNull(), F.timestamp_seconds(epoch.cast("long"))).otherwise(F.try_to_timestamp(s))


def _typed(df: DataFrame, contract: TableContract) -> DataFrame:
    cols = []
    for f in contract.fields:
        c = F.col(f.name)
        clean = F.when(_blank(c), F.lit(None)).otherwise(F.trim(c))
        if f.kind == "float":
            cols.append(clean.try_cast("double").alias(f.name))
        elif f.kind == "int":
            cols.append(clean.try_cast("long").alias(f.name))
        elif f.kind == "timestamp":
            cols.append(_parse_ts(c).alias(f.name))
        else:
            cols.append(clean.cast("string").alias(f.name))
    return df.select(*cols, "_row")


def validate_table(spark: SparkSession, raw: DataFrame, contract: TableContract, quarantine_path: str | Path,
                   policy: ValidationPolicy | None = None, reference_keys: dict[str, DataFrame] | None = None,
                   ) -> ValidationResult:
    """Check ``raw`` (from :func:`read_raw`) against ``contract``.

    ``reference_keys`` maps "items.item_id" to a one-column DataFrame of valid keys.
    Writes the quarantine parquet (possibly empty) before deciding pass/fail.
    """
    policy = policy or ValidationPolicy()
    errs = _rule_errors(contract)
    df = raw
    for f in contract.fields:
        if f.unique:
            w = Window.partitionBy(F.trim(F.col(f.name))).orderBy("_source_file", "_row")
            df = df.withColumn(f"_dup_{f.name}", F.row_number().over(w)).withColumn(
                f"_first_{f.name}", F.first("_row").over(w))
            errs.append(F.when(~_blank(F.col(f.name)) & (F.col(f"_dup_{f.name}") > 1),
                               F.concat(F.lit(f"{f.name}: duplicate '"), F.col(f.name),
                                        F.lit("' (first at row "), F.col(f"_first_{f.name}").cast("string"),
                                        F.lit(")"))))
        if f.references and reference_keys and f.references in reference_keys:
            keys = reference_keys[f.references].select(F.col(reference_keys[f.references].columns[0]).alias(
                f"_ref_{f.name}")).distinct().withColumn(f"_has_{f.name}", F.lit(True))
            df = df.join(F.broadcast(keys), F.trim(F.col(f.name)) == F.col(f"_ref_{f.name}"), "left")
            errs.append(F.when(~_blank(F.col(f.name)) & F.col(f"_has_{f.name}").isNull(),
                               F.concat(F.lit(f"{f.name}: unknown id '"), F.col(f.name),
                                        F.lit(f"' (not in {f.references.split('.')[0]})"))))
    df = df.withColumn("_errors", F.filter(F.array(*errs), lambda x: x.isNotNull())).cache()
    bad = df.filter(F.size("_errors") > 0)
    quarantine = bad.select(
        *[F.col(c) for c in contract.columns], F.col(CORRUPT).alias("raw_record"),
        F.col("_source_file").alias("source_file"), F.col("_row").alias("row"),
        F.split(F.col("_errors")[0], ":")[0].alias("field"),
        F.array_join("_errors", "; ").alias("reason"),
    )
    write_table(quarantine, quarantine_path, partitions=1)
    total = df.count()
    n_bad = bad.count()
    reasons = {r["field"]: r["count"] for r in
               spark.read.parquet(str(quarantine_path)).groupBy("field").count().collect()}
    good = _typed(df.filter(F.size("_errors") == 0), contract)
    result = ValidationResult(contract.name, good, total, n_bad, str(quarantine_path), reasons)
    limit = policy.limit_for(contract.name)
    if total and result.bad_fraction > limit:
        examples = (spark.read.parquet(str(quarantine_path)).orderBy("source_file", "row")
                    .limit(policy.examples_in_error).collect())
        lines = [f"  {r['source_file']} row {r['row']} field '{r['field']}': {r['reason']}" for r in examples]
        raise DataValidationError(
            f"{contract.name}: {n_bad} of {total} rows bad ({result.bad_fraction:.2%} > allowed {limit:.2%}); "
            f"quarantined in {quarantine_path}. First bad rows:\n" + "\n".join(lines))
    if total == 0:
        raise DataValidationError(f"{contract.name}: the table has no rows")
    return result


TABLE_ORDER = ("items", "users", "events", "impressions")  # later tables reference the earlier ones
SPARK_TYPES = {"float": T.DoubleType(), "int": T.LongType(), "timestamp": T.TimestampType()}


def empty_table(spark: SparkSession, contract: TableContract) -> DataFrame:
    """The typed, empty stand-in for an optional table the dataset does not have."""
    schema = T.StructType([T.StructField(f.name, SPARK_TYPES.get(f.kind, T.StringType())) for f in contract.fields])
    return spark.createDataFrame([], schema)


def validate_all(spark: SparkSession, raw_paths: dict[str, str | Path], out_dir: str | Path,
                 policy: ValidationPolicy | None = None,
                 tables: tuple[str, ...] = TABLE_ORDER) -> dict[str, ValidationResult]:
    """Validate items, then users, then events and impressions (whose ids must exist in the first two).

    ``tables``: a subset to validate; a referenced table outside it is read from its earlier validated output.
    An optional table (impressions) the source does not have becomes an empty typed table.
    """
    out_dir = Path(out_dir)
    results: dict[str, ValidationResult] = {}
    refs: dict[str, DataFrame] = {}
    for name in TABLE_ORDER:
        contract = CONTRACTS[name]
        key = contract.fields[0].name
        if name not in tables:
            if not (out_dir / name / "_schema.json").exists():
                if any(f.references and f.references.startswith(f"{name}.") for t in tables
                       for f in CONTRACTS[t].fields):
                    raise DataValidationError(f"validating {list(tables)} needs the validated {name} table: "
                                              f"materialize {name} first")
                continue
            refs[f"{name}.{key}"] = spark.read.parquet(str(out_dir / name)).select(key)
            continue
        if name in OPTIONAL_TABLES and name not in raw_paths:
            write_table(empty_table(spark, contract), out_dir / name, partitions=1)
            results[name] = ValidationResult(name, spark.read.parquet(str(out_dir / name)), 0, 0, "", {})
            continue
        raw = read_raw(spark, raw_paths[name], contract)
        res = validate_table(spark, raw, contract, out_dir / "quarantine" / name, policy, refs)
        good = res.good.withColumnRenamed("_row", "event_seq") if name == "events" else res.good.drop("_row")
        write_table(good, out_dir / name)
        res.good = spark.read.parquet(str(out_dir / name))
        refs[f"{name}.{key}"] = res.good.select(key)
        results[name] = res
    return results
