"""The analytics step: journaled sale dates → the marts (replaced by date), recomputed from the
committed enriched lines."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pyiceberg.expressions import And, BooleanExpression, GreaterThanOrEqual, In, LessThanOrEqual

from retail_etl.config.model import Config
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

    ``inputs`` is the execution's; the step's work is the journal, so it does not depend on them.
    """
    dates = lake.state.pending_dates(STAGE)
    if not dates:
        return AnalyticsResult()
    say(f"aggregating {len(dates)} sale date(s)")
    by_date = In("sale_date", [d.isoformat() for d in dates])
    marts: dict[str, int] = {}
    with StepIO(lake, run_id, STAGE, {ENRICHED_TABLE: _date_span(dates)}) as io:
        engine = io.engine
        enriched = io.relation(ENRICHED_TABLE) or relations.empty(engine, [("sale_date", "DATE")])
        of_dates = engine.temp_name("enriched_dates")
        engine.view(of_dates, f"SELECT * FROM {enriched} WHERE {in_list('sale_date', [d.isoformat() for d in dates])}")
        scales = money_scales(config.sources.values())
        for mart in analytics.MARTS:
            query = analytics.mart_query(mart, ident(of_dates), scales=scales)
            files = io.write(mart, query, ANALYTICS, "marts", partition_by=("sale_date",))
            io.stage(mart, files, [by_date])
            marts[mart] = io.rows_written(mart, "marts")
        io.commit()
    lake.state.clear_pending_dates(STAGE, dates)
    return AnalyticsResult(dates, marts)


def _date_span(dates: Sequence[dt.date]) -> BooleanExpression:
    """The range from the first to the last of ``dates``: a cheap filter to plan their files with.

    pyiceberg tests every literal of an ``In`` against every file (3.4 s CPU for a year's files
    and dates, against 0.25 s for the range); reads still filter on the exact dates.
    """
    return And(GreaterThanOrEqual("sale_date", min(dates).isoformat()),
               LessThanOrEqual("sale_date", max(dates).isoformat()))
