"""The analytics step: journaled sale dates → the marts, recomputed from the committed enriched lines.

The default marts are replaced by date. A declared mart is replaced by period: a week or month mart
recomputes the whole periods the journaled dates fall in, from every enriched line of those periods;
an ``all`` mart is recomputed over the whole enriched table (one file), since a group touched by a
batch may have lost all its lines, which only a full aggregation sees. Results therefore do not depend
on how the input was split into batches.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from pyiceberg.expressions import AlwaysTrue, And, BooleanExpression, GreaterThanOrEqual, In, LessThanOrEqual

from retail_etl.config.model import Config, MartConfig
from retail_etl.errors import ConfigError
from retail_etl.jobs import analytics
from retail_etl.lake.lake import Lake
from retail_etl.pipeline import relations
from retail_etl.pipeline.results import AnalyticsResult, RunInputs
from retail_etl.pipeline.tableio import ANALYTICS, Say, StepIO, quiet
from retail_etl.pipeline.validate import ENRICHED_TABLE
from retail_etl.quoting import ident, in_list
from retail_etl.sources.mapping import money_scales

STAGE = "analytics"


def analytics_step(
    config: Config, lake: Lake, run_id: str, inputs: RunInputs, *, say: Say = quiet
) -> AnalyticsResult:
    """Recompute the marts for the journaled dates from the committed enriched lines.

    A declared mart not yet in the catalog is built over the whole enriched table.
    ``inputs`` is the execution's; the step's work is the journal, so it does not depend on them.
    """
    dates = lake.state.pending_dates(STAGE)
    new = {name for name in config.marts if lake.catalog.load(name) is None}
    if not dates and not (new and lake.catalog.load(ENRICHED_TABLE) is not None):
        return AnalyticsResult()
    say(f"aggregating {len(dates)} sale date(s)" + (f", building {', '.join(sorted(new))}" if new else ""))
    by_date = In("sale_date", [d.isoformat() for d in dates])
    plans = {name: _plan(mart, dates, full=name in new) for name, mart in config.marts.items()}
    marts: dict[str, int] = {}
    with StepIO(lake, run_id, STAGE, {ENRICHED_TABLE: _read_filter(dates, plans.values())}) as io:
        engine = io.engine
        enriched = io.relation(ENRICHED_TABLE) or relations.empty(engine, [("sale_date", "DATE")])
        scales = money_scales(config.sources.values())
        if dates:
            of_dates = _lines(io, enriched, dates)
            for mart in analytics.MARTS:
                query = analytics.mart_query(mart, ident(of_dates), scales=scales)
                files = io.write(mart, query, ANALYTICS, "marts", partition_by=("sale_date",))
                io.stage(mart, files, [by_date])
                marts[mart] = io.rows_written(mart, "marts")
        for name, mart in config.marts.items():
            plan = plans[name]
            lines = _lines(io, enriched, plan.days)
            query = analytics.declared_query(mart.grain, mart.time, mart.measures, ident(lines), scales=scales)
            _check_unchanged(lake, name, [f.name for f in engine.schema(query)])
            files = io.write(name, query, ANALYTICS, "marts", partition_by=plan.partition_by)
            io.stage(name, files, [plan.replace])
            marts[name] = io.rows_written(name, "marts")
        io.commit()
    lake.state.clear_pending_dates(STAGE, dates)
    return AnalyticsResult(dates, marts)


def _check_unchanged(lake: Lake, name: str, columns: list[str]) -> None:
    """Refuse a declared mart whose table was written under another declaration: only the periods a
    run re-derives would follow the new one."""
    table = lake.catalog.load(name)
    existing = [f.name for f in table.schema().fields] if table is not None else columns
    if existing != columns:
        raise ConfigError(
            f"mart {name!r} exists with columns {', '.join(existing)}, but its declaration now gives "
            f"{', '.join(columns)}", ("marts", name),
            hint="declare the new definition under a new name (the next run builds it from all lines), "
                 "or restore the earlier one")


@dataclass(frozen=True)
class _Plan:
    """What a declared mart recomputes: the days whose lines it reads (None: all), the rows it replaces."""

    days: list[dt.date] | None
    replace: BooleanExpression
    partition_by: tuple[str, ...]


def _plan(mart: MartConfig, dates: Sequence[dt.date], *, full: bool) -> _Plan:
    period = analytics.period_column(mart.time)
    if period is None or full:
        return _Plan(None, AlwaysTrue(), (period,) if period else ())
    starts = sorted({analytics.period_start(mart.time, d) for d in dates})
    days = [
        start + dt.timedelta(days=i)
        for start in starts
        for i in range((analytics.period_end(mart.time, start) - start).days + 1)
    ]
    return _Plan(days, In(period, [s.isoformat() for s in starts]), (period,))


def _lines(io: StepIO, enriched: str, days: Sequence[dt.date] | None) -> str:
    """A view of the enriched lines of ``days`` (all of them for None)."""
    name = io.engine.temp_name("enriched_days")
    where = "" if days is None else f" WHERE {in_list('sale_date', [d.isoformat() for d in days])}"
    io.engine.view(name, f"SELECT * FROM {enriched}{where}")
    return name


def _read_filter(dates: Sequence[dt.date], plans: Sequence[_Plan]) -> BooleanExpression:
    """The enriched lines the step reads: every line when a mart needs them all, else the span of the
    journaled dates and of the periods the declared marts recompute."""
    if any(p.days is None for p in plans):
        return AlwaysTrue()
    days = [*dates, *(d for p in plans for d in p.days or ())]
    return _date_span(days)


def _date_span(dates: Sequence[dt.date]) -> BooleanExpression:
    """The range from the first to the last of ``dates``: a cheap filter to plan their files with.

    pyiceberg tests every literal of an ``In`` against every file (3.4 s CPU for a year's files
    and dates, against 0.25 s for the range); reads still filter on the exact dates.
    """
    return And(GreaterThanOrEqual("sale_date", min(dates).isoformat()),
               LessThanOrEqual("sale_date", max(dates).isoformat()))
