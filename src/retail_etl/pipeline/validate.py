"""The validate step: new deliveries → products, sales_validated and validate-stage quarantine
(replaced by delivery: a delivery's own rows, and those of the earlier deliveries it replaces),
with their quality figures and the replacements made; journals the sale dates the batch touches
for transform, commits, then bookmarks the deliveries."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from pyiceberg.expressions import AlwaysTrue, And, EqualTo, In

from retail_etl.config.model import Config, SourceConfig
from retail_etl.jobs.transform import affected_dates
from retail_etl.errors import QualityGateError
from retail_etl.jobs.validate import InputFile, ValidationResult, check_headers, validate
from retail_etl.lake.lake import Lake, Pending
from retail_etl.lake.raw import RawFile
from retail_etl.pipeline import freshness, metrics, relations
from retail_etl.pipeline.metrics import FAILED, PASSED
from retail_etl.pipeline.results import Replacement, RunInputs, SourceFigures, ValidateResult
from retail_etl.pipeline.tableio import PROCESSED, Say, StepIO, quiet
from retail_etl.quality.ruleset import source_rules
from retail_etl.quoting import ident, idents, in_list, lit
from retail_etl.sources.mapping import SourcePlan, money_scales, plan_source

STAGE = "validate"
TRANSFORM_STAGE = "transform"
VALIDATED_TABLE = {"sales": "sales_validated", "products": "products"}
PARTITION_BY = {"sales": ("sale_date",), "products": ()}
ENRICHED_TABLE = "sales_enriched"
#: The levels of the checks validate measures (transform measures its own).
LEVELS = ("row", "dataset", "parse", "read")

@dataclass
class _Batch:
    name: str
    source: SourceConfig
    pending: Pending
    valid_files: list[str] = field(default_factory=list)
    result: ValidationResult | None = None

    @property
    def files(self) -> list[RawFile]:
        return self.pending.files

    @property
    def replaced(self) -> list[str]:
        """Ids of the earlier deliveries the batch's files replace."""
        return sorted({e.delivery_id for earlier in self.pending.replaces.values() for e in earlier})

    @property
    def deliveries(self) -> list[str]:
        """Ids of the deliveries whose committed rows the batch replaces: its own and those it replaces."""
        return sorted({f.delivery_id for f in self.files} | set(self.replaced))


def validate_step(
    config: Config, lake: Lake, run_id: str, inputs: RunInputs, *, say: Say = quiet
) -> ValidateResult:
    """Ingest new files, check the sources' freshness, validate every source's unprocessed raw files
    and commit them with their quality figures; journal the sale dates they touch (and the
    execution's business date, if it names one) for transform; bookmark the files.

    A breached quality gate commits nothing but the failing source's figures (``quality_runs``
    with status ``failed``, and its checks), then re-raises."""
    ingested = {name: [f.name for f in files] for name, files in lake.ingest_new(say).items()}
    notices = _freshness(config, lake)
    batches = []
    for name, source in sorted(config.sources.items(), key=lambda kv: (kv[1].entity != "products", kv[0])):
        pending = lake.pending(name, source, inputs.ingest_date, bookmarks=inputs.bookmarks)
        if pending.files or pending.superseded:
            batches.append(_Batch(name, source, pending))
        if not pending.files:
            notices.setdefault(name, []).insert(0, _idle(lake, name, source))
    todo = [b for b in batches if b.files]
    if inputs.date is not None:
        # A business-date run: transform and analytics re-derive the date from all validated lines
        # (journaled first, like every date a commit below makes stale).
        lake.state.add_pending_dates(TRANSFORM_STAGE, [inputs.date], run_id)
    figures: list[SourceFigures] = []
    replacements: list[Replacement] = []
    dates: list[dt.date] = []
    in_flight: list[str] = []
    if todo:
        try:
            dates, in_flight = _validate(lake, run_id, todo, figures, replacements, say)
        except QualityGateError as exc:
            if isinstance(exc.measured, ValidationResult):
                _commit_failed(lake, run_id, SourceFigures.of(exc.measured))
            raise
    if inputs.date is not None:
        dates = sorted({*dates, inputs.date})
    if inputs.bookmarks == "enable":
        lake.state.mark_processed([f for b in batches for f in (*b.files, *b.pending.superseded)], run_id,
                                  settles=(STAGE, in_flight))
    elif in_flight:
        lake.state.end_commits(STAGE, in_flight)
    return ValidateResult(ingested, figures, dates, notices, replacements)


def _validate(
    lake: Lake, run_id: str, todo: list[_Batch], figures: list[SourceFigures], replacements: list[Replacement],
    say: Say,
) -> tuple[list[dt.date], list[str]]:
    """Validate and commit the batches (figures appended to ``figures``, the replacements made to
    ``replacements``); returns the sale dates journaled for transform and the runs whose commits are
    in flight."""
    scales = money_scales(lake.config.sources.values())
    plans = {b.name: plan_source(b.name, b.source, scales) for b in todo}
    for b in todo:  # a broken header fails the run before any data is touched
        check_headers(plans[b.name], b.source, [_input(lake, f) for f in b.files])
    reads = {VALIDATED_TABLE["products"]: AlwaysTrue(), VALIDATED_TABLE["sales"]: AlwaysTrue()}
    sales_deliveries = sorted({d for b in todo if b.source.entity == "sales" for d in b.deliveries})
    if sales_deliveries:  # enriched lines of the deliveries the batch replaces (see _touched_dates)
        reads[ENRICHED_TABLE] = In("delivery_id", sales_deliveries)
    for entity in sorted({b.source.entity for b in todo if b.replaced}):
        reads[f"{entity}_quarantine"] = In("delivery_id", sorted(
            {d for b in todo if b.source.entity == entity for d in b.replaced}))
    with StepIO(lake, run_id, STAGE, reads) as io:
        products: str | None = None
        for b in todo:
            say(f"validating {b.name}: {len(b.files)} file(s)")
            replaced_rows = _rows_by_delivery(io, b, b.replaced)
            products = _validate_batch(io, b, plans[b.name], products)
            assert b.result is not None
            figures.append(SourceFigures.of(b.result))
            replacements += _replacements(io, b, replaced_rows)
        dates = _touched_dates(io, [b for b in todo if b.source.entity == "sales"])
        lake.state.add_pending_dates(TRANSFORM_STAGE, dates, run_id)
        in_flight = lake.state.begin_commits(STAGE, run_id)
        _stage_metrics(io, figures, in_flight, PASSED)
        io.commit()
    return dates, in_flight


def _freshness(config: Config, lake: Lake) -> dict[str, list[str]]:
    """Notices of the sources delivering later than their ``expect`` allows; a
    :class:`QualityGateError` naming every source past its ``fail`` level."""
    now = dt.datetime.now(dt.UTC)
    notices: dict[str, list[str]] = {}
    failing = []
    for name, source in sorted(config.sources.items()):
        if source.expect is None:
            continue
        late = freshness.lateness(name, source.expect, freshness.newest_ingest(
            [f.ingested_at for f in lake.raw.manifest(name)]), now)
        if late is None:
            continue
        if late.level == "fail":
            failing.append(f"source {name!r}: {late.message}")
        else:
            notices[name] = [f"late: {late.message}"]
    if failing:
        raise QualityGateError(
            f"{'; '.join(failing)} (sources.<name>.expect.fail); nothing was committed",
            hint="check that the extract is still delivered where the source's path points, or relax expect",
        )
    return notices


def _idle(lake: Lake, name: str, source: SourceConfig) -> str:
    """Why a source has nothing to validate in this run."""
    if not lake.discover(name, source):
        return f"no file matches {source.path!r}"
    return "no new file"


def _commit_failed(lake: Lake, run_id: str, failed: SourceFigures) -> None:
    """Commit a failed gate's figures on their own, replacing only this run's (a retry of the
    commit never counts them twice; the figures of other runs in flight stay theirs)."""
    with StepIO(lake, run_id, f"{STAGE}-failed", {}) as io:
        _stage_metrics(io, [failed], [run_id], FAILED)
        io.commit()


def _input(lake: Lake, f: RawFile) -> InputFile:
    return InputFile(lake.raw.local_path(f), f.name, f.delivery_id)


def _rows_by_delivery(io: StepIO, b: _Batch, deliveries: list[str]) -> dict[str, int]:
    """Committed rows (validated and validate-stage quarantine) of the source's ``deliveries``."""
    if not deliveries:
        return {}
    entity = b.source.entity
    parts = []
    for table, stages in ((VALIDATED_TABLE[entity], None), (f"{entity}_quarantine", ("read", "validate"))):
        relation = io.relation(table)
        if relation:
            stage = f" AND {in_list('stage', stages)}" if stages else ""
            parts.append(f"SELECT delivery_id FROM {relation} WHERE source = {lit(b.name)}{stage} "
                         f"AND {in_list('delivery_id', deliveries)}")
    if not parts:
        return {}
    rows = io.engine.fetch_rows(f"SELECT delivery_id, count(*) FROM ({' UNION ALL '.join(parts)}) AS r GROUP BY 1")
    return {d: n for d, n in rows}


def _written_rows(io: StepIO, b: _Batch) -> dict[str, int]:
    """Rows the batch wrote (valid and quarantined) by delivery id."""
    entity = b.source.entity
    counts: dict[str, int] = {}
    for table in (VALIDATED_TABLE[entity], f"{entity}_quarantine"):  # one relation per schema
        files = io.local_files.get((table, b.name), [])
        if files:
            written = relations.parquet(io.engine, files, "written")
            for d, n in io.engine.fetch_rows(f"SELECT delivery_id, count(*) FROM {written} GROUP BY 1"):
                counts[d] = counts.get(d, 0) + n
    return counts


def _replacements(io: StepIO, b: _Batch, removed: dict[str, int]) -> list[Replacement]:
    """One :class:`Replacement` per file of the batch that replaces earlier deliveries."""
    if not b.pending.replaces:
        return []
    added = _written_rows(io, b)
    return [
        Replacement(b.name, f.name, f.delivery_id, [e.delivery_id for e in earlier],
                    sum(removed.get(e.delivery_id, 0) for e in earlier), added.get(f.delivery_id, 0))
        for f in b.files if (earlier := b.pending.replaces.get(f.delivery_id))
    ]


def _validate_batch(io: StepIO, b: _Batch, plan: SourcePlan, products: str | None) -> str | None:
    """Validate one source's files and stage its tables; returns the products reference for the
    sources after it (this batch's valid rows, when it is the product master)."""
    entity = b.source.entity
    engine = io.engine
    b.result = validate(
        engine, plan, b.source, source_rules(b.source), [_input(io.lake, f) for f in b.files],
        run_id=io.run_id, tables={"products": products or _committed_products(io)},
        partition_by=PARTITION_BY[entity],
    )
    main, quarantine = VALIDATED_TABLE[entity], f"{entity}_quarantine"
    # Files per delivery (a short ASCII id: never a file name inside a folder name), so that
    # replacing a delivery drops whole files.
    b.valid_files = io.write(main, b.result.valid_query, PROCESSED, b.name, partition_by=PARTITION_BY[entity],
                             layout=(*PARTITION_BY[entity], "delivery_id"))
    q_files = io.write(quarantine, b.result.quarantine_query, PROCESSED, b.name, layout=("delivery_id",))
    by_delivery = And(EqualTo("source", b.name), In("delivery_id", b.deliveries))
    io.stage(main, b.valid_files, [AlwaysTrue() if entity == "products" else by_delivery])
    io.stage(quarantine, q_files, [And(In("stage", ["read", "validate"]), by_delivery)])
    if entity != "products":
        return products
    if b.valid_files:
        return relations.parquet(engine, b.valid_files, "new_products")
    return relations.empty(engine, relations.entity_columns("products") + list(relations.LINEAGE))


def _committed_products(io: StepIO) -> str:
    """The committed products reference, or an empty one."""
    return io.relation(VALIDATED_TABLE["products"]) or relations.empty(io.engine, relations.entity_columns("products"))


def _touched_dates(io: StepIO, batches: list[_Batch]) -> list[dt.date]:
    """Sale dates whose enriched lines the batches change: their lines' dates, before and after,
    and the dates of lines sharing a key with them."""
    engine = io.engine
    old_v, old_e = io.relation(VALIDATED_TABLE["sales"]), io.relation(ENRICHED_TABLE)
    dates: set[dt.date] = set()
    for b in batches:
        # Without earlier validated lines, the lines sharing a key with the batch are its own.
        key = list(b.source.key or ()) if old_v else []
        after = relations.validated_after(engine, b.name, old_v, b.deliveries, b.valid_files)
        cols = idents(["sale_date", *key])
        in_files = in_list("delivery_id", b.deliveries)
        changed = [f"SELECT {cols} FROM {after} WHERE {in_files}"]
        for old in (old_v, old_e):
            if old:
                changed.append(f"SELECT {cols} FROM {old} WHERE source = {lit(b.name)} AND {in_files}")
        changed_name = engine.temp_name("changed")
        engine.table(changed_name, " UNION ALL ".join(changed))
        touched = affected_dates(engine, validated_after=after, changed=ident(changed_name), key=key)
        dates.update(r[0] for r in engine.fetch_rows(f"SELECT sale_date FROM {touched}"))
        engine.drop(changed_name)
    return sorted(dates)


def _stage_metrics(io: StepIO, figures: list[SourceFigures], replaced_runs: list[str], status: str) -> None:
    metrics.stage_runs(io, [
        {"source": s.source, "files": len(s.files), "rows_read": s.rows_read, "rows_valid": s.rows_valid,
         "rows_quarantined": s.rows_quarantined, "rows_unparseable": s.rows_unparseable,
         "quarantine_rate": s.quarantine_rate, "seconds": s.seconds, "status": status}
        for s in figures
    ], replaced_runs)
    metrics.stage_checks(io, [
        {"source": s.source, "rule_id": r.id, "rule": r.rule, "severity": r.severity, "level": r.level,
         "rows_checked": s.rows_read, "rows_failed": r.rows_failed, "value": r.value, "passed": r.passed}
        for s in figures for r in s.rules
    ], LEVELS, replaced_runs)
