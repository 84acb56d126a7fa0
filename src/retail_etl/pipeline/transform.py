"""The transform step: journaled sale dates → sales_enriched and transform-stage quarantine (replaced
by date), recomputed from all validated lines of those dates, with the transform's quality figures;
journals the dates for analytics."""

from __future__ import annotations

import datetime as dt

from pyiceberg.expressions import AlwaysTrue, And, EqualTo, In

from retail_etl.config.model import Config
from retail_etl.errors import ConservationError
from retail_etl.jobs.transform import DUPLICATE_RULE, UNKNOWN_PRODUCT_RULE, TransformFigures, counts, transform
from retail_etl.lake.lake import Lake
from retail_etl.pipeline import metrics, relations
from retail_etl.pipeline.results import RunInputs, TransformResult
from retail_etl.pipeline.tableio import PROCESSED, Say, StepIO, quiet
from retail_etl.pipeline.validate import ENRICHED_TABLE, VALIDATED_TABLE
from retail_etl.sources.mapping import attribute_columns, money_scales

STAGE = "transform"
ANALYTICS_STAGE = "analytics"
QUARANTINE_TABLE = "sales_quarantine"
LEVELS = ("transform",)

def transform_step(
    config: Config, lake: Lake, run_id: str, inputs: RunInputs, *, say: Say = quiet
) -> TransformResult:
    """Re-derive enriched lines (and transform-stage quarantine) for the journaled dates.

    ``inputs`` is the execution's; the step's work is the journal, so it does not depend on them.
    """
    dates = lake.state.pending_dates(STAGE)
    if not dates:
        return TransformResult()
    say(f"transforming {len(dates)} sale date(s)")
    reads = {VALIDATED_TABLE["products"]: AlwaysTrue(), VALIDATED_TABLE["sales"]: AlwaysTrue()}
    with StepIO(lake, run_id, STAGE, reads) as io:
        engine = io.engine
        days = relations.dates(engine, dates)
        products = io.relation(VALIDATED_TABLE["products"]) or relations.empty(
            engine, relations.entity_columns("products"))
        enriched, quarantined = [], []
        validated = io.relation(VALIDATED_TABLE["sales"])
        every_date = validated is not None and not engine.fetch_rows(
            f"SELECT 1 FROM {validated} WHERE sale_date NOT IN (SELECT sale_date FROM {days}) LIMIT 1")
        # Every source's lines carry every source's attributes (NULL where it declares none).
        attributes = attribute_columns(config.sources_of("sales").values())
        lines_in: dict[str, int] = {}
        for name, source in config.sources_of("sales").items():
            own = [(a, t) for a, t in attributes if a in source.attributes]
            after = relations.validated_after(engine, name, validated, [], [], own)
            (lines_in[name],) = engine.fetch_row(
                f"SELECT count(*) FROM {after} WHERE sale_date IN (SELECT sale_date FROM {days})")
            lines, rejects = transform(
                engine, validated_after=after, dates=days,
                products=products, key=source.key, returns=source.returns, unknown_products=source.unknown_products,
                run_id=run_id, every_date=every_date, scales=money_scales(config.sources.values()),
                attributes=[(a, t, a in source.attributes) for a, t in attributes], key_wins=source.key_wins,
            )
            enriched.append(lines)
            quarantined.append(rejects)
        by_date = In("sale_date", [d.isoformat() for d in dates])
        files = io.write(ENRICHED_TABLE, relations.union_all(enriched), PROCESSED, "sales", partition_by=("sale_date",))
        io.stage(ENRICHED_TABLE, files, [by_date])
        q_files = io.write(QUARANTINE_TABLE, relations.union_all(quarantined), PROCESSED, "sales",
                           layout=("sale_date",))
        io.stage(QUARANTINE_TABLE, q_files, [And(EqualTo("stage", "transform"), by_date)])
        figures = counts(engine, io.local_files[(ENRICHED_TABLE, "sales")],
                         io.local_files[(QUARANTINE_TABLE, "sales")])
        per_source = {name: figures.get(name, TransformFigures(0, 0, 0, 0)) for name in config.sources_of("sales")}
        check_conservation(lines_in, per_source, dates)
        lake.state.add_pending_dates(ANALYTICS_STAGE, dates, run_id)
        in_flight = lake.state.begin_commits(STAGE, run_id)
        metrics.stage_checks(io, _checks(per_source, config), LEVELS, in_flight)
        io.commit()
    lake.state.clear_pending_dates(STAGE, dates, settles=in_flight)
    return TransformResult(dates, per_source)


def check_conservation(
    lines_in: dict[str, int], per_source: dict[str, TransformFigures], dates: list[dt.date]
) -> None:
    """Raise :class:`ConservationError` unless, for every source, the enriched lines plus the lines
    the transform quarantined are the validated lines of ``dates``: every line comes out exactly once."""
    broken = [
        f"source {name!r}: {n:,} validated line(s), but {f.enriched:,} enriched + {f.duplicates:,} duplicate(s)"
        f" + {f.unknown_products:,} unknown product(s) = {f.enriched + f.duplicates + f.unknown_products:,}"
        for name, n in lines_in.items()
        for f in [per_source[name]]
        if n != f.enriched + f.duplicates + f.unknown_products
    ]
    if broken:
        span = f"{dates[0]} .. {dates[-1]}" if len(dates) > 1 else str(dates[0])
        raise ConservationError(
            f"transform of sale date(s) {span} does not conserve lines: {'; '.join(broken)}; nothing was committed",
            hint="a line was multiplied or lost between validation and enrichment (a reference with a repeated "
            "key?); check `retail-etl query \"SELECT product_id, count(*) FROM retail_etl.products GROUP BY 1 "
            "HAVING count(*) > 1\"`, re-validate the products, and report the defect if the figures persist",
        )


def _checks(per_source: dict[str, TransformFigures], config: Config) -> list[dict]:
    return [
        {"source": src, "rule_id": rid, "rule": text, "severity": "quarantine", "level": "transform",
         "rows_checked": res.lines_in, "rows_failed": failed, "value": None, "passed": failed == 0}
        for src, res in per_source.items()
        for rid, text, failed in ((DUPLICATE_RULE, f"{config.sources[src].key_wins} line of each key wins",
                                   res.duplicates),
                                  (UNKNOWN_PRODUCT_RULE, "product_id in products", res.unknown_products))
    ]
