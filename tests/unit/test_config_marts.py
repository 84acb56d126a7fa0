"""Declared marts are checked at load time: unknown grain columns and measures, with a did-you-mean."""

from __future__ import annotations

from pathlib import Path

import pytest

from retail_etl.config.loader import load_config
from retail_etl.errors import ConfigError


def _with_marts(path: Path, marts: str) -> Path:
    path.write_text(path.read_text() + "\nmarts:\n" + marts)
    return path


def _error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    return info.value


def test_a_valid_declared_mart_loads(scaffold_config: Path) -> None:
    config = load_config(_with_marts(scaffold_config, (
        "  category_month: {grain: [category, store_id], time: month, measures: [net_revenue, lines_without_cost]}\n"
    )), env={})
    mart = config.marts["category_month"]
    assert (mart.grain, mart.time, mart.measures) == (("category", "store_id"), "month",
                                                      ("net_revenue", "lines_without_cost"))


def test_an_unknown_measure_is_refused_with_a_suggestion(scaffold_config: Path) -> None:
    error = _error(_with_marts(scaffold_config, "  m: {grain: [category], time: month, measures: [net_revenu]}\n"))
    assert "unknown measure 'net_revenu'" in error.message
    assert "did you mean 'net_revenue'?" in (error.hint or "")
    assert "marts.m.measures" in str(error)


def test_an_unknown_grain_column_is_refused_with_a_suggestion(scaffold_config: Path) -> None:
    error = _error(_with_marts(scaffold_config, "  m: {grain: [categroy], time: all, measures: [lines]}\n"))
    assert "unknown grain column 'categroy'" in error.message
    assert "did you mean 'category'?" in (error.hint or "")


def test_every_mart_problem_is_reported_at_once(scaffold_config: Path) -> None:
    error = _error(_with_marts(scaffold_config, (
        "  daily_sales: {measures: [lines]}\n"
        "  Bad-Name: {measures: [lines]}\n"
        "  m: {grain: [region, region], time: week, measures: [baskets, lines, lines]}\n"
    )))
    text = str(error)
    assert text.startswith("6 problems")  # the unknown, repeated grain column once
    for part in ("'daily_sales' is a table the pipeline already writes", "'Bad-Name' is not a table name",
                 "unknown grain column 'region'", "unknown measure 'baskets'", "measure 'lines' is listed twice"):
        assert part in text


def test_a_declared_attribute_is_a_grain_column(scaffold_config: Path) -> None:
    text = scaffold_config.read_text()
    assert "    entity: sales\n" in text
    declared = text.replace("    entity: sales\n", "    entity: sales\n    attributes: {region: store}\n", 1)
    scaffold_config.write_text(declared)
    config = load_config(_with_marts(scaffold_config, "  m: {grain: [region], time: all, measures: [lines]}\n"), env={})
    assert config.marts["m"].grain == ("region",)


@pytest.mark.parametrize("time", ["year", "daily"])
def test_an_unknown_time_grain_is_refused(scaffold_config: Path, time: str) -> None:
    error = _error(_with_marts(scaffold_config, f"  m: {{grain: [category], time: {time}, measures: [lines]}}\n"))
    assert "marts.m.time" in str(error)


def test_a_grain_column_named_like_the_period_or_a_measure_is_refused(scaffold_config: Path) -> None:
    text = scaffold_config.read_text()
    declared = text.replace("    entity: sales\n",
                            "    entity: sales\n    attributes: {month_start: store, lines: channel}\n", 1)
    scaffold_config.write_text(declared)
    error = _error(_with_marts(scaffold_config, (
        "  m: {grain: [month_start, lines], time: month, measures: [lines]}\n"
    )))
    assert "'lines' would be two columns of the mart" in str(error)
    assert "'month_start' would be two columns of the mart" in str(error)
