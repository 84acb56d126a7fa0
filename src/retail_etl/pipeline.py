"""The pipeline run: pick up new raw files, validate each source, commit every table, bookmark.

Order: the products reference first (sales rules check against it), then sales sources.
All sources are validated and their Parquet files written before anything is committed,
so a breached quality gate or a bad file commits nothing. Each table commit replaces the
rows that the batch's files produced before (by file name), which makes re-running a batch
after a crash harmless.
"""

from __future__ import annotations

import datetime as dt
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from pyiceberg.expressions import AlwaysTrue, BooleanExpression, In

from retail_etl.config.model import Config, SourceConfig
from retail_etl.engines import duckdb as engine
from retail_etl.jobs.validate import InputFile, ValidationResult, check_headers, validate
from retail_etl.lake.catalog import Catalog
from retail_etl.lake.raw import RawFile, RawZone
from retail_etl.lake.state import StateStore
from retail_etl.quality.ruleset import source_rules
from retail_etl.sources.mapping import plan_source

PROCESSED = "processed"
VALIDATED_TABLE = {"sales": "sales_validated", "products": "products"}
PARTITION_BY = {"sales": ("sale_date",), "products": ()}
METRICS_TABLE = "quality_metrics"
RUNS_TABLE = "quality_runs"


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)


@dataclass
class RunResult:
    run_id: str
    ingested: dict[str, list[RawFile]] = field(default_factory=dict)
    sources: list[ValidationResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def files(self) -> int:
        return sum(len(r.files) for r in self.sources)


class Lake:
    """The lake of a configuration: raw zone, catalog and state."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.root = Path(config.lake_root())
        self.raw = RawZone(self.root)
        self.catalog = Catalog(self.root, config.lake.namespace)
        self.state = StateStore(self.root)

    def discover(self, name: str, source: SourceConfig) -> list[Path]:
        """Files matching the source's ``path`` glob (relative to the project folder)."""
        pattern = source.path
        base = self.config.project_dir
        if Path(pattern).is_absolute():
            base, pattern = Path(pattern).anchor, str(Path(pattern).relative_to(Path(pattern).anchor))
        return sorted(p for p in Path(base).glob(pattern) if p.is_file())

    def pending(self, name: str, source: SourceConfig) -> tuple[list[RawFile], list[RawFile]]:
        """(to process, superseded): the newest version of each unprocessed file name, in ingest order."""
        done = self.state.processed(name)
        todo = [f for f in self.raw.manifest(name) if f.path not in done]
        latest: dict[str, RawFile] = {}
        for f in todo:
            latest.pop(f.name, None)
            latest[f.name] = f
        if source.entity == "products" and latest:
            # The product master is a full snapshot: only the newest file counts.
            newest = list(latest.values())[-1]
            latest = {newest.name: newest}
        keep = list(latest.values())
        return keep, [f for f in todo if f not in keep]


def run(config: Config, *, progress: Callable[[str], None] | None = None) -> RunResult:
    """Ingest what the sources' globs match, then validate and commit everything new."""
    lake = Lake(config)
    result = RunResult(run_id=new_run_id())
    started = time.perf_counter()
    say = progress or (lambda _msg: None)
    with lake.state.lock():
        for name, source in config.sources.items():
            added = lake.raw.ingest(name, lake.discover(name, source))
            if added:
                result.ingested[name] = added
                say(f"ingested {len(added)} file(s) into raw/{name}")
        _process(lake, result, say)
    result.seconds = time.perf_counter() - started
    return result


def _ordered(config: Config) -> list[tuple[str, SourceConfig]]:
    return sorted(config.sources.items(), key=lambda kv: (kv[1].entity != "products", kv[0]))


@dataclass
class _Batch:
    name: str
    source: SourceConfig
    files: list[RawFile]
    superseded: list[RawFile]
    result: ValidationResult | None = None
    valid_files: list[str] = field(default_factory=list)
    quarantine_files: list[str] = field(default_factory=list)


def _process(lake: Lake, result: RunResult, say: Callable[[str], None]) -> None:
    batches = []
    for name, source in _ordered(lake.config):
        files, superseded = lake.pending(name, source)
        if files or superseded:
            batches.append(_Batch(name, source, files, superseded))
    if not any(b.files for b in batches):
        if batches:
            lake.state.mark_processed([f for b in batches for f in b.superseded], result.run_id)
        return

    plans = {b.name: plan_source(b.name, b.source) for b in batches}
    for b in batches:  # fail on a broken header before touching any data
        check_headers(plans[b.name], b.source, [InputFile(lake.raw.local_path(f), f.name) for f in b.files])

    tmp = lake.root / "_tmp" / result.run_id
    con = engine.connect(lake.config.engine, tmp / "spill")
    written: list[Path] = []
    try:
        engine.register_tables(con, lake.catalog)
        refs: dict[str, str] = {}
        for b in batches:
            if not b.files:
                continue
            say(f"validating {b.name}: {len(b.files)} file(s)")
            entity = b.source.entity
            tables = {**_reference_views(con, lake, refs), **refs}
            b.result = validate(
                con,
                plans[b.name],
                b.source,
                source_rules(b.source),
                [InputFile(lake.raw.local_path(f), f.name) for f in b.files],
                run_id=result.run_id,
                tables=tables,
                partition_by=PARTITION_BY[entity],
            )
            result.sources.append(b.result)
            b.valid_files, b.quarantine_files = _write(con, lake, b, result.run_id, written)
            if entity == "products":
                refs["products"] = _register_files(con, "_new_products", b.valid_files, b.result.valid_query)
        say("committing")
        for b in batches:
            _commit(lake, b, result.run_id)
        _commit_metrics(lake, result)
        lake.state.mark_processed([f for b in batches for f in (*b.files, *b.superseded)], result.run_id)
    except BaseException:
        for folder in written:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        con.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _reference_views(con, lake: Lake, refs: dict[str, str]) -> dict[str, str]:
    """Rule table names -> relations: committed catalog tables unless this run brings a new version."""
    out = {}
    for entity, table in VALIDATED_TABLE.items():
        if entity in refs or entity == "sales":
            continue
        if lake.catalog.load(table) is not None:
            out[entity] = f'"{lake.config.lake.namespace}"."{table}"'
        else:
            out[entity] = _register_files(con, f"_empty_{entity}", [], None, entity=entity)
    return out


def _register_files(con, view: str, files: list[str], query: str | None, *, entity: str | None = None) -> str:
    if files:
        listing = ", ".join(engine._quote(f) for f in files)
        con.execute(f'CREATE OR REPLACE VIEW "{view}" AS SELECT * FROM read_parquet([{listing}])')
    elif query is not None:
        con.execute(f'CREATE OR REPLACE VIEW "{view}" AS SELECT * FROM ({query}) WHERE false')
    else:
        from retail_etl.model import ENTITIES

        cols = ", ".join(f'CAST(NULL AS {c.type}) AS "{c.name}"' for c in ENTITIES[entity].columns)
        con.execute(f'CREATE OR REPLACE VIEW "{view}" AS SELECT {cols} WHERE false')
    return f'"{view}"'


def _write(con, lake: Lake, b: _Batch, run_id: str, written: list[Path]) -> tuple[list[str], list[str]]:
    assert b.result is not None
    entity = b.source.entity
    main = lake.catalog.ensure(
        VALIDATED_TABLE[entity], engine.arrow_schema(con, b.result.valid_query), zone=PROCESSED,
        partition_by=PARTITION_BY[entity],
    )
    quarantine = lake.catalog.ensure(
        f"{entity}_quarantine", engine.arrow_schema(con, b.result.quarantine_query), zone=PROCESSED
    )
    out = []
    for table, query, parts in (
        (main, b.result.valid_query, (*PARTITION_BY[entity], "source_file")),
        (quarantine, b.result.quarantine_query, ("source_file",)),
    ):
        folder = lake.catalog.data_dir(table) / f"run_id={run_id}" / b.name
        written.append(folder)
        out.append(engine.write_parquet(con, query, folder, partition_by=parts))
    return out[0], out[1]


def _commit(lake: Lake, b: _Batch, run_id: str) -> None:
    if not b.files:
        return
    entity = b.source.entity
    names = sorted({f.name for f in b.files})
    by_file: BooleanExpression = In("source_file", names)
    main = lake.catalog.load(VALIDATED_TABLE[entity])
    quarantine = lake.catalog.load(f"{entity}_quarantine")
    assert main is not None and quarantine is not None
    lake.catalog.commit(quarantine, b.quarantine_files, replace=by_file, run_id=run_id)
    lake.catalog.commit(main, b.valid_files, replace=AlwaysTrue() if entity == "products" else by_file, run_id=run_id)


def _commit_metrics(lake: Lake, result: RunResult) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    runs = pa.table(
        {
            "run_id": [result.run_id] * len(result.sources),
            "measured_at": pa.array([now] * len(result.sources), pa.timestamp("us")),
            "source": [s.source for s in result.sources],
            "files": pa.array([len(s.files) for s in result.sources], pa.int64()),
            "rows_read": pa.array([s.rows_read for s in result.sources], pa.int64()),
            "rows_valid": pa.array([s.rows_valid for s in result.sources], pa.int64()),
            "rows_quarantined": pa.array([s.rows_quarantined for s in result.sources], pa.int64()),
            "rows_unparseable": pa.array([s.rows_unparseable for s in result.sources], pa.int64()),
            "quarantine_rate": pa.array([s.quarantine_rate for s in result.sources], pa.float64()),
            "seconds": pa.array([s.seconds for s in result.sources], pa.float64()),
        }
    )
    rules = [(s, r) for s in result.sources for r in s.rules]
    metrics = pa.table(
        {
            "run_id": [result.run_id] * len(rules),
            "measured_at": pa.array([now] * len(rules), pa.timestamp("us")),
            "source": [s.source for s, _ in rules],
            "rule_id": [r.id for _, r in rules],
            "rule": [r.rule for _, r in rules],
            "severity": [r.severity for _, r in rules],
            "level": [r.level for _, r in rules],
            "rows_checked": pa.array([s.rows_read for s, _ in rules], pa.int64()),
            "rows_failed": pa.array([r.rows_failed for _, r in rules], pa.int64()),
            "value": pa.array([r.value for _, r in rules], pa.float64()),
            "passed": pa.array([r.passed for _, r in rules], pa.bool_()),
        }
    )
    for name, data in ((RUNS_TABLE, runs), (METRICS_TABLE, metrics)):
        table = lake.catalog.ensure(name, data.schema, zone=PROCESSED)
        table.append(data, snapshot_properties={"retail-etl.run-id": result.run_id})
