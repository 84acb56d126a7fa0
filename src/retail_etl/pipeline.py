"""The pipeline run: pick up new raw files, validate, transform, aggregate, commit, bookmark.

Order: the products reference first (sales rules and enrichment use it), then sales sources.
Every table's new Parquet files are written before anything is committed, so a breached
quality gate or a bad file commits nothing. Then each table gets ONE Iceberg commit that
replaces what the batch re-derives:
- validated and quarantine rows: by source file (a changed file replaces its earlier rows);
- enriched lines, transform-stage quarantine and analytics: by sale date — every date the
  batch touches is recomputed from all validated lines of that date.
The affected dates are journaled before the first commit and cleared after the bookmarks, so
a run killed between commits is completed by the next run: re-running a batch is harmless.
"""

from __future__ import annotations

import datetime as dt
import secrets
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
from pyiceberg.expressions import AlwaysTrue, And, BooleanExpression, EqualTo, In

from retail_etl.config.model import Config, SourceConfig
from retail_etl.engines import duckdb as engine
from retail_etl.jobs import analytics
from retail_etl.jobs.transform import DUPLICATE_RULE, UNKNOWN_PRODUCT_RULE, TransformResult, affected_dates, transform
from retail_etl.jobs.validate import InputFile, RuleResult, ValidationResult, check_headers, validate
from retail_etl.lake.catalog import Catalog
from retail_etl.lake.raw import RawFile, RawZone
from retail_etl.lake.state import StateStore
from retail_etl.model import ENTITIES
from retail_etl.quality.ruleset import source_rules
from retail_etl.sources.mapping import plan_source

PROCESSED, ANALYTICS = "processed", "analytics"
VALIDATED_TABLE = {"sales": "sales_validated", "products": "products"}
PARTITION_BY = {"sales": ("sale_date",), "products": ()}
ENRICHED_TABLE = "sales_enriched"
METRICS_TABLE = "quality_metrics"
RUNS_TABLE = "quality_runs"


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)


@dataclass
class RunResult:
    run_id: str
    ingested: dict[str, list[RawFile]] = field(default_factory=dict)
    sources: list[ValidationResult] = field(default_factory=list)
    transform: TransformResult | None = None
    dates: list[dt.date] = field(default_factory=list)
    seconds: float = 0.0


class Lake:
    """The lake of a configuration: raw zone, catalog and state."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.root = Path(config.lake_root())
        self.raw = RawZone(self.root)
        self.catalog = Catalog(self.root, config.lake.namespace)
        self.state = StateStore(self.root)

    def discover(self, source: SourceConfig) -> list[Path]:
        """Files matching the source's ``path`` glob (relative to the project folder)."""
        pattern = Path(source.path)
        base = self.config.project_dir
        if pattern.is_absolute():
            base, pattern = Path(pattern.anchor), pattern.relative_to(pattern.anchor)
        return sorted(p for p in Path(base).glob(str(pattern)) if p.is_file())

    def pending(self, name: str, source: SourceConfig) -> tuple[list[RawFile], list[RawFile]]:
        """(to process, superseded): the newest version of each unprocessed file name."""
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
    """Ingest what the sources' globs match, then process everything new."""
    lake = Lake(config)
    result = RunResult(run_id=new_run_id())
    started = time.perf_counter()
    say = progress or (lambda _msg: None)
    with lake.state.lock():
        for name, source in config.sources.items():
            added = lake.raw.ingest(name, lake.discover(source))
            if added:
                result.ingested[name] = added
                say(f"ingested {len(added)} file(s) into raw/{name}")
        _Run(lake, result, say).execute()
    result.seconds = time.perf_counter() - started
    return result


@dataclass
class _Batch:
    name: str
    source: SourceConfig
    files: list[RawFile]
    superseded: list[RawFile]
    result: ValidationResult | None = None
    valid_files: list[str] = field(default_factory=list)
    quarantine_files: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return sorted({f.name for f in self.files})


class _Run:
    """One execution of the pipeline over the pending batches."""

    def __init__(self, lake: Lake, result: RunResult, say: Callable[[str], None]) -> None:
        self.lake = lake
        self.result = result
        self.say = say
        self.catalog = lake.catalog
        self.tmp = lake.root / "_tmp" / result.run_id
        self.written: list[Path] = []
        self.staged: dict[str, tuple[list[str], list[BooleanExpression]]] = {}
        self.before: set[str] = set()

    def execute(self) -> None:
        batches = []
        for name, source in sorted(self.lake.config.sources.items(), key=lambda kv: (kv[1].entity != "products", kv[0])):
            files, superseded = self.lake.pending(name, source)
            if files or superseded:
                batches.append(_Batch(name, source, files, superseded))
        journal = self.lake.state.pending_dates()
        if not any(b.files for b in batches) and not journal:
            self.lake.state.mark_processed([f for b in batches for f in b.superseded], self.result.run_id)
            return
        plans = {b.name: plan_source(b.name, b.source) for b in batches}
        for b in batches:  # a broken header fails the run before any data is touched
            check_headers(plans[b.name], b.source, [self._input(f) for f in b.files])

        con = engine.connect(self.lake.config.engine, self.tmp / "spill")
        try:
            self.before = set(engine.register_tables(con, self.catalog))  # tables as they were at the start
            self._validate(con, batches, plans)
            self._transform(con, batches, journal)
            self.say("committing")
            self.lake.state.set_pending_dates(self.result.dates, self.result.run_id)
            for table, (files, replace) in self.staged.items():
                self.catalog.commit(self.catalog.load(table), files, replace=replace, run_id=self.result.run_id)
            self._commit_metrics()
            self.lake.state.mark_processed(
                [f for b in batches for f in (*b.files, *b.superseded)], self.result.run_id
            )
            self.lake.state.set_pending_dates([], self.result.run_id)
        except BaseException:
            for folder in self.written:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            con.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _input(self, f: RawFile) -> InputFile:
        return InputFile(self.lake.raw.local_path(f), f.name)

    # -- validate ---------------------------------------------------------------------------------

    def _validate(self, con: duckdb.DuckDBPyConnection, batches: list[_Batch], plans: dict) -> None:
        quarantine_files: dict[str, list[str]] = {}
        quarantine_replace: dict[str, list[BooleanExpression]] = {}
        for b in batches:
            if not b.files:
                continue
            self.say(f"validating {b.name}: {len(b.files)} file(s)")
            entity = b.source.entity
            b.result = validate(
                con, plans[b.name], b.source, source_rules(b.source), [self._input(f) for f in b.files],
                run_id=self.result.run_id, tables=self._references(con), partition_by=PARTITION_BY[entity],
            )
            self.result.sources.append(b.result)
            main = self._ensure(VALIDATED_TABLE[entity], con, b.result.valid_query, PROCESSED, PARTITION_BY[entity])
            b.valid_files = self._write(con, main, b.result.valid_query, b.name, (*PARTITION_BY[entity], "source_file"))
            q_table = f"{entity}_quarantine"
            quarantine = self._ensure(q_table, con, b.result.quarantine_query, PROCESSED)
            quarantine_files.setdefault(q_table, []).extend(
                self._write(con, quarantine, b.result.quarantine_query, b.name, ("source_file",))
            )
            by_file = And(EqualTo("source", b.name), In("source_file", b.names))
            quarantine_replace.setdefault(q_table, []).append(And(In("stage", ["read", "validate"]), by_file))
            replace = AlwaysTrue() if entity == "products" else by_file
            self._stage(VALIDATED_TABLE[entity], b.valid_files, [replace])
            if entity == "products":
                _view(con, "_new_products", b.valid_files, b.result.valid_query)
        for table, files in quarantine_files.items():
            self._stage(table, files, quarantine_replace[table])

    def _references(self, con: duckdb.DuckDBPyConnection) -> dict[str, str]:
        """Rule table names -> relations: this run's new products if any, else the committed table."""
        return {"products": self._products(con)}

    def _products(self, con: duckdb.DuckDBPyConnection) -> str:
        if _exists(con, "_new_products"):
            return '"_new_products"'
        if VALIDATED_TABLE["products"] in self.before:
            return f'"{self.catalog.namespace}"."{VALIDATED_TABLE["products"]}"'
        cols = ", ".join(f'CAST(NULL AS {c.type}) AS "{c.name}"' for c in ENTITIES["products"].columns)
        con.execute(f'CREATE OR REPLACE VIEW "_no_products" AS SELECT {cols} WHERE false')
        return '"_no_products"'

    # -- transform and analytics ------------------------------------------------------------------

    def _transform(self, con: duckdb.DuckDBPyConnection, batches: list[_Batch], journal: list[dt.date]) -> None:
        sales = {n: s for n, s in self.lake.config.sources.items() if s.entity == "sales"}
        batch_of = {b.name: b for b in batches if b.files and b.source.entity == "sales"}
        if not batch_of and not journal:
            return
        ns = self.catalog.namespace
        has_validated = VALIDATED_TABLE["sales"] in self.before
        has_enriched = ENRICHED_TABLE in self.before
        old_v = f'"{ns}"."{VALIDATED_TABLE["sales"]}"' if has_validated else None

        con.execute("CREATE OR REPLACE TABLE _journal (sale_date DATE)")
        if journal:
            con.executemany("INSERT INTO _journal VALUES (?)", [(d,) for d in journal])
        date_parts = ["SELECT sale_date FROM _journal"]
        for name, source in sales.items():
            b = batch_of.get(name)
            _validated_after(con, f"_v_after_{name}", name, old_v, b.names if b else [], b.valid_files if b else [],
                             b.result.valid_query if b else None)
            if b is None:
                continue
            key = list(source.key or ())
            cols = ", ".join(["sale_date", *(f'"{k}"' for k in key)])
            in_files = _in_list("source_file", b.names)
            changed = [f"SELECT {cols} FROM \"_v_after_{name}\" WHERE {_in_list('source_file', b.names)}"]
            if old_v:
                changed.append(f"SELECT {cols} FROM {old_v} WHERE source = {_lit(name)} AND {in_files}")
            if has_enriched:
                changed.append(f'SELECT {cols} FROM "{ns}"."{ENRICHED_TABLE}" WHERE source = {_lit(name)} AND {in_files}')
            con.execute(f'CREATE OR REPLACE TABLE "_changed_{name}" AS ' + " UNION ALL ".join(changed))
            affected_dates(con, validated_after=f'"_v_after_{name}"', changed=f'"_changed_{name}"', key=key)
            con.execute(f'CREATE OR REPLACE TABLE "_dates_{name}" AS SELECT * FROM _dates')
            date_parts.append(f'SELECT sale_date FROM "_dates_{name}"')
        con.execute(
            "CREATE OR REPLACE TABLE _dates AS SELECT DISTINCT sale_date FROM ("
            + " UNION ALL ".join(date_parts) + ") WHERE sale_date IS NOT NULL ORDER BY sale_date"
        )
        self.result.dates = [r[0] for r in con.execute("SELECT sale_date FROM _dates").fetchall()]
        if not self.result.dates:
            return
        self.say(f"transforming {len(self.result.dates)} sale date(s)")
        products = self._products(con)
        totals = [0, 0, 0, 0]
        first = True
        for name, source in sales.items():
            res = transform(
                con, validated_after=f'"_v_after_{name}"', products=products, key=source.key,
                returns=source.returns, unknown_products=source.unknown_products, run_id=self.result.run_id,
            )
            totals = [a + b for a, b in zip(totals, (res.lines_in, res.enriched, res.duplicates, res.unknown_products), strict=True)]
            verb = "CREATE OR REPLACE TABLE {t} AS SELECT * FROM {s}" if first else "INSERT INTO {t} SELECT * FROM {s}"
            con.execute(verb.format(t="_enriched_all", s="_enriched"))
            con.execute(verb.format(t="_transform_q_all", s="_transform_quarantine"))
            first = False
            if name in batch_of:
                _add_transform_metrics(batch_of[name].result, res)
        self.result.transform = TransformResult(*totals)

        dates = [d.isoformat() for d in self.result.dates]
        by_date = In("sale_date", dates)
        enriched = self._ensure(ENRICHED_TABLE, con, "SELECT * FROM _enriched_all", PROCESSED, ("sale_date",))
        self._stage(ENRICHED_TABLE, self._write(con, enriched, "SELECT * FROM _enriched_all", "sales", ("sale_date",)), [by_date])
        q_query = "SELECT * FROM _transform_q_all"
        quarantine = self._ensure("sales_quarantine", con, q_query, PROCESSED)
        q_files = self._write(con, quarantine, q_query, "transform", ("sale_date",))
        files, replace = self.staged.get("sales_quarantine", ([], []))
        self._stage("sales_quarantine", [*files, *q_files], [*replace, And(EqualTo("stage", "transform"), by_date)])

        self.say("aggregating")
        for mart in analytics.MARTS:
            query = analytics.mart_query(mart, "_enriched_all")
            table = self._ensure(mart, con, query, ANALYTICS, ("sale_date",))
            self._stage(mart, self._write(con, table, query, "marts", ("sale_date",)), [by_date])

    # -- writing ----------------------------------------------------------------------------------

    def _ensure(self, name: str, con, query: str, zone: str, partition_by: Iterable[str] = ()):
        return self.catalog.ensure(name, engine.arrow_schema(con, query), zone=zone, partition_by=tuple(partition_by))

    def _write(self, con, table, query: str, part: str, partition_by: tuple[str, ...]) -> list[str]:
        folder = self.catalog.data_dir(table) / f"run_id={self.result.run_id}" / part
        self.written.append(folder.parent)
        return engine.write_parquet(con, query, folder, partition_by=partition_by)

    def _stage(self, table: str, files: list[str], replace: list[BooleanExpression]) -> None:
        self.staged[table] = (files, replace)

    def _commit_metrics(self) -> None:
        sources = self.result.sources
        if not sources:
            return
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        run_id = self.result.run_id
        runs = pa.table({
            "run_id": [run_id] * len(sources),
            "measured_at": pa.array([now] * len(sources), pa.timestamp("us")),
            "source": [s.source for s in sources],
            "files": pa.array([len(s.files) for s in sources], pa.int64()),
            "rows_read": pa.array([s.rows_read for s in sources], pa.int64()),
            "rows_valid": pa.array([s.rows_valid for s in sources], pa.int64()),
            "rows_quarantined": pa.array([s.rows_quarantined for s in sources], pa.int64()),
            "rows_unparseable": pa.array([s.rows_unparseable for s in sources], pa.int64()),
            "quarantine_rate": pa.array([s.quarantine_rate for s in sources], pa.float64()),
            "seconds": pa.array([s.seconds for s in sources], pa.float64()),
        })
        rules = [(s, r) for s in sources for r in s.rules]
        metrics = pa.table({
            "run_id": [run_id] * len(rules),
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
        })
        for name, data in ((RUNS_TABLE, runs), (METRICS_TABLE, metrics)):
            table = self.catalog.ensure(name, data.schema, zone=PROCESSED)
            table.append(data, snapshot_properties={"retail-etl.run-id": run_id})


def _add_transform_metrics(result: ValidationResult | None, res: TransformResult) -> None:
    if result is None:
        return
    result.rules.append(RuleResult(DUPLICATE_RULE, "first line of each key wins", "quarantine", "transform",
                                   res.duplicates, passed=res.duplicates == 0))
    result.rules.append(RuleResult(UNKNOWN_PRODUCT_RULE, "product_id in products", "quarantine", "transform",
                                   res.unknown_products, passed=res.unknown_products == 0))


def _validated_after(con, view: str, source: str, old: str | None, names: list[str], new_files: list[str],
                     new_query: str | None) -> None:
    """``view``: the source's validated lines as they are once this batch is committed."""
    parts = []
    if old:
        keep = f" AND NOT {_in_list('source_file', names)}" if names else ""
        parts.append(f"SELECT * FROM {old} WHERE source = {_lit(source)}{keep}")
    if new_files:
        parts.append(f"SELECT * FROM read_parquet([{', '.join(_lit(f) for f in new_files)}])")
    if not parts:
        cols = ", ".join(f'CAST(NULL AS {c.type}) AS "{c.name}"' for c in ENTITIES["sales"].columns)
        parts.append(f"SELECT {cols}, CAST(NULL AS VARCHAR) AS source, CAST(NULL AS VARCHAR) AS source_file, "
                     "CAST(NULL AS BIGINT) AS source_line, CAST(NULL AS VARCHAR) AS run_id WHERE false")
    con.execute(f'CREATE OR REPLACE VIEW "{view}" AS ' + " UNION ALL BY NAME ".join(parts))


def _view(con, name: str, files: list[str], query: str) -> None:
    if files:
        con.execute(f'CREATE OR REPLACE VIEW "{name}" AS SELECT * FROM read_parquet([{", ".join(_lit(f) for f in files)}])')
    else:
        con.execute(f'CREATE OR REPLACE VIEW "{name}" AS SELECT * FROM ({query}) WHERE false')


def _exists(con, name: str) -> bool:
    return bool(engine.fetch_row(con, "SELECT count(*) FROM duckdb_views() WHERE view_name = ?", [name])[0])


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _in_list(column: str, values: list[str]) -> str:
    if not values:
        return "false"
    return f"{column} IN ({', '.join(_lit(v) for v in values)})"
