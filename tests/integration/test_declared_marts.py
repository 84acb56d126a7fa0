"""Declared marts (docs/metrics.md, *Declared marts*): figures equal an independent computation from
the lines, and an incremental run equals a full rebuild."""

from __future__ import annotations

import csv
import datetime as dt
import random
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from retail_etl.config.loader import load_config
from retail_etl.pipeline import Lake, run
from retail_etl.query import run_query
from tests.integration import oracle

CONFIG = """\
lake: {root: lake}
sources:
  sales:
    entity: sales
    path: data/*.csv
    columns:
      transaction_id: order
      line_number: line
      sale_date: {column: date, format: "%Y-%m-%d"}
      store_id: store
      product_id: sku
      category: category
      quantity: qty
      net_amount: sales
      margin: profit
    defaults: {currency: USD}
    attributes: {region: region}
    key: [transaction_id, line_number]
    unknown_products: keep
marts:
  region_category_month:
    grain: [region, category]
    time: month
    measures: [net_revenue, units_sold, units_returned, margin, cost, lines_without_cost, transactions,
               avg_basket_value]
  region_week: {grain: [region], time: week, measures: [net_revenue, lines, distinct_customers]}
  store_all_time: {grain: [store_id], time: all, measures: [net_revenue, transactions, returns_amount]}
  category_day: {grain: [category], time: day, measures: [gross_revenue, margin, lines_without_cost]}
"""
HEADER = ["order", "line", "date", "store", "sku", "category", "region", "qty", "sales", "profit"]
CATEGORIES, REGIONS, STORES = ("Toys", "Garden", "Books"), ("North", "South"), ("S1", "S2", "S3")


def _rows(rng: random.Random, prefix: str, days: list[dt.date], n: int) -> list[list[str]]:
    rows = []
    for i in range(n):
        qty = rng.choice([1, 2, 3, 5, -1])
        net = Decimal(rng.randint(100, 9999)) / 100 * qty
        profit = "" if rng.random() < 0.2 else str((net * Decimal("0.3")).quantize(Decimal("0.01")))
        rows.append([f"{prefix}{i // 3}", str(i % 3 + 1), rng.choice(days).isoformat(), rng.choice(STORES),
                     f"P{rng.randint(1, 9)}", rng.choice(CATEGORIES), rng.choice(REGIONS), str(qty), str(net),
                     profit])
    return rows


def _write(path: Path, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([HEADER, *rows])


def _files() -> dict[str, list[list[str]]]:
    """A first file over January to March and a second adding lines to February and to April."""
    rng = random.Random(12)
    span = [dt.date(2024, 1, 1) + dt.timedelta(days=d) for d in range(91)]
    february = [d for d in span if d.month == 2]
    april = [dt.date(2024, 4, d) for d in range(1, 31)]
    return {"a.csv": _rows(rng, "A", span, 240), "b.csv": _rows(rng, "B", february + april, 90)}


def _project(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "retail-etl.yaml").write_text(CONFIG)
    return root


def _lines(files: dict[str, list[list[str]]]) -> list[dict]:
    """The enriched lines, read independently: amounts as given, cost = net - profit (None without a profit)."""
    out = []
    for rows in files.values():
        for r in (dict(zip(HEADER, row, strict=True)) for row in rows):
            day, qty, net = dt.date.fromisoformat(r["date"]), Decimal(r["qty"]), Decimal(r["sales"])
            margin = Decimal(r["profit"]) if r["profit"] else None
            out.append({
                "transaction_id": r["order"], "sale_date": day, "store_id": r["store"], "category": r["category"],
                "region": r["region"], "customer_id": None, "quantity": qty, "net_amount": net,
                "discount_amount": Decimal(0), "gross_amount": net, "margin": margin,
                "cost_amount": None if margin is None else net - margin, "is_return": qty < 0,
                "month_start": day.replace(day=1),
                "week_start": day - dt.timedelta(days=day.weekday()),
            })
    return out


def _expected(lines: list[dict], mart: str) -> list[dict]:
    """The oracle's figures of ``mart``: the lines grouped by period start and grain."""
    spec = yaml.safe_load(CONFIG)["marts"][mart]
    period, column = {"month": ("month_start", "month_start"), "week": ("week_start", "week_start"),
                      "day": ("sale_date", "sale_date"), "all": (None, None)}[spec.get("time", "day")]
    grain = ((period,) if period else ()) + tuple(spec["grain"])
    names = ((column,) if column else ()) + tuple(spec["grain"])
    figures = oracle.marts(lines, grain, scale=Decimal("0.01"))
    return sorted(
        ({**dict(zip(names, key, strict=True)), **{m: f[m] for m in spec["measures"]}} for key, f in figures.items()),
        key=repr,
    )


def _table(project: Path, mart: str) -> list[dict]:
    rows = run_query(load_config(project / "retail-etl.yaml", env={}), f"SELECT * FROM retail_etl.{mart}").to_pylist()
    return sorted(rows, key=repr)


@pytest.fixture(scope="module")
def lakes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(one run over both files, a run per file)."""
    files = _files()
    base = tmp_path_factory.mktemp("marts")
    whole = _project(base / "whole")
    for name, rows in files.items():
        _write(whole / "data" / name, rows)
    run(load_config(whole / "retail-etl.yaml", env={}))
    split = _project(base / "split")
    for name, rows in files.items():
        _write(split / "data" / name, rows)
        run(load_config(split / "retail-etl.yaml", env={}))
    return whole, split


MARTS = ("region_category_month", "region_week", "store_all_time", "category_day")


@pytest.mark.parametrize("mart", MARTS)
def test_a_declared_mart_equals_the_oracle(lakes: tuple[Path, Path], mart: str) -> None:
    expected = _expected(_lines(_files()), mart)
    for project in lakes:
        assert _table(project, mart) == expected, project.name


@pytest.mark.parametrize("mart", MARTS)
def test_a_run_per_file_equals_one_run(lakes: tuple[Path, Path], mart: str) -> None:
    whole, split = lakes
    assert _table(split, mart) == _table(whole, mart)


def test_the_second_file_recomputed_february_and_added_april(lakes: tuple[Path, Path]) -> None:
    _, split = lakes
    config = load_config(split / "retail-etl.yaml", env={})
    table = Lake(config).catalog.load("region_category_month")
    commits = [s for s in table.snapshots() if s.summary and s.summary.get("added-data-files")]
    assert len(commits) == 2
    months = {r["month_start"] for r in _table(split, "region_category_month")}
    assert months == {dt.date(2024, m, 1) for m in (1, 2, 3, 4)}


def test_a_month_mart_writes_one_file_per_month_and_an_all_mart_one_file(lakes: tuple[Path, Path]) -> None:
    whole, split = lakes
    for project in (whole, split):
        catalog = Lake(load_config(project / "retail-etl.yaml", env={})).catalog
        assert len(catalog.files(catalog.load("region_category_month"))) == 4
        assert len(catalog.files(catalog.load("store_all_time"))) == 1
    assert len(catalog.files(catalog.load("region_week"))) == len(
        {line["week_start"] for line in _lines(_files())})


def test_a_mart_declared_on_an_existing_lake_is_built_from_all_lines(lakes, tmp_path: Path) -> None:
    whole, _ = lakes
    project = tmp_path / "later"
    shutil.copytree(whole, project)
    config = project / "retail-etl.yaml"
    config.write_text(CONFIG + "  store_month: {grain: [store_id], time: month, measures: [lines]}\n")
    run(load_config(config, env={}))
    rows = _table(project, "store_month")
    assert sum(r["lines"] for r in rows) == len(_lines(_files()))
    assert len(rows) == 4 * len(STORES)


def test_re_deriving_journaled_dates_again_changes_nothing(lakes, tmp_path: Path) -> None:
    """A run killed after the analytics commits, before its journal is cleared, does the work again:
    periods are replaced, not added to."""
    from retail_etl.pipeline.analytics import STAGE, analytics_step
    from retail_etl.pipeline.results import RunInputs

    whole, _ = lakes
    project = tmp_path / "again"
    shutil.copytree(whole, project)
    before = {mart: _table(project, mart) for mart in MARTS}
    config = load_config(project / "retail-etl.yaml", env={})
    lake = Lake(config)
    lake.state.add_pending_dates(STAGE, [dt.date(2024, 2, 10), dt.date(2024, 4, 2)], "again")
    result = analytics_step(config, lake, "again", RunInputs())
    assert result.marts["region_category_month"] == len({(r["month_start"], r["region"], r["category"])
                                                          for r in before["region_category_month"]
                                                          if r["month_start"].month in (2, 4)})
    assert {mart: _table(project, mart) for mart in MARTS} == before


def test_a_changed_declaration_on_an_existing_mart_is_refused(lakes, tmp_path: Path) -> None:
    from retail_etl.errors import ConfigError

    whole, _ = lakes
    project = tmp_path / "changed"
    shutil.copytree(whole, project)
    before = _table(project, "store_all_time")
    config = project / "retail-etl.yaml"
    config.write_text(CONFIG.replace("measures: [net_revenue, transactions, returns_amount]",
                                     "measures: [net_revenue, transactions]"))
    _write(project / "data" / "c.csv", _rows(random.Random(3), "C", [dt.date(2024, 3, 5)], 6))
    with pytest.raises(ConfigError, match="mart 'store_all_time' exists with columns store_id, net_revenue, "
                                          "transactions, returns_amount, but its declaration now gives "
                                          "store_id, net_revenue, transactions"):
        run(load_config(config, env={}))
    config.write_text(CONFIG)
    assert _table(project, "store_all_time") == before
    run(load_config(config, env={}))
    after = _table(project, "store_all_time")
    assert sum(r["transactions"] for r in after) > sum(r["transactions"] for r in before)
