"""The run summary in its three formats, from typed step results (no pipeline run needed)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

from rich.console import Console

from retail_etl.cli.output import print_run
from retail_etl.jobs.transform import TransformFigures
from retail_etl.jobs.validate import RuleResult
from retail_etl.pipeline import AnalyticsResult, RunResult, SourceFigures, TransformResult, ValidateResult

DAYS = [dt.date(2024, 1, 1), dt.date(2024, 1, 2)]
SOURCE = SourceFigures("[bold]pos[/]", ["a.csv"], 10, 8, 2, 1, 0, 0.5,
                       [RuleResult("IsComplete.x", "IsComplete \"x\"", "quarantine", "row", 1, passed=False)],
                       ["quarantine rate 20.0% is above the warn level 5%"])
RESULT = RunResult("exec-1", "SUCCEEDED", 1.5, {
    "validate": ValidateResult({"[bold]pos[/]": ["a.csv"]}, [SOURCE], DAYS),
    "transform": TransformResult(DAYS, {"[bold]pos[/]": TransformFigures(8, 7, 1, 0)}),
    "analytics": AnalyticsResult(DAYS, {"daily_sales": 2, "store_daily": 3}),
})


def _printed(result: RunResult, fmt: str) -> str:
    out = io.StringIO()
    print_run(Console(file=out, width=200), result, fmt)
    return out.getvalue()


def test_table_shows_names_verbatim_and_each_step() -> None:
    text = _printed(RESULT, "table")
    assert text.count("[bold]pos[/]") == 3  # the table, the failing check, the warning
    assert "8 validated lines on 2 sale date(s) (2024-01-01 .. 2024-01-02) -> 7 enriched, 1 duplicates" in text
    assert "analytics: 2 marts refreshed for 2 sale date(s)" in text and "5 rows" in text


def test_a_resumed_run_says_what_it_skipped_and_what_it_did() -> None:
    resumed = RunResult("exec-2", "SUCCEEDED", 0.5, {"analytics": RESULT.steps["analytics"]}, "exec-1",
                        ["validate", "transform"])
    text = _printed(resumed, "table")
    assert "run exec-2 resumed exec-1; validate, transform done by it" in text
    assert "nothing to do" not in text and "analytics: 2 marts refreshed" in text


def test_csv_has_one_row_per_source_step_and_mart() -> None:
    rows = list(csv.DictReader(io.StringIO(_printed(RESULT, "csv"))))
    assert [(r["step"], r["name"], r["rows_in"], r["rows_out"], r["rows_quarantined"]) for r in rows] == [
        ("validate", "[bold]pos[/]", "10", "8", "2"), ("transform", "[bold]pos[/]", "8", "7", "1"),
        ("analytics", "daily_sales", "", "2", ""), ("analytics", "store_daily", "", "3", ""),
    ]


def test_json_is_the_typed_results_and_reads_back() -> None:
    data = json.loads(_printed(RESULT, "json"))
    assert data["steps"]["validate"]["sources"][0]["rules"][0]["rows_failed"] == 1
    assert data["steps"]["transform"]["dates"] == ["2024-01-01", "2024-01-02"]
    steps = {"validate": ValidateResult, "transform": TransformResult, "analytics": AnalyticsResult}
    assert {name: steps[name].from_dict(d) for name, d in data["steps"].items()} == RESULT.steps
