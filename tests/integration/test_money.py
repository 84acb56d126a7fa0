"""Precise money, line cost and profit, product attributes on the line, declared attributes: end to end
on DuckDB, each figure against an exact computation with :mod:`decimal`."""

from __future__ import annotations

import datetime as dt
import random
import textwrap
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from retail_etl.config.loader import load_config
from retail_etl.errors import QualityGateError
from retail_etl.pipeline import run
from retail_etl.query import run_query
from tests.integration import oracle

GOLDEN = Path(__file__).parents[1] / "golden" / "cases" / "superstore"
MEASURES = ("transactions", "lines", "units_sold", "units_returned", "gross_revenue", "discounts", "returns_amount",
            "net_revenue", "cost", "margin", "lines_without_cost", "distinct_customers", "avg_basket_value")


def project(tmp_path: Path, config: str, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / "data").mkdir(exist_ok=True)
        (tmp_path / "data" / name).write_text(text, encoding="utf-8")
    (tmp_path / "retail-etl.yaml").write_text(textwrap.dedent(config), encoding="utf-8")
    return tmp_path


def q(root: Path, sql: str) -> list[dict]:
    return run_query(load_config(root / "retail-etl.yaml", env={}), sql).to_pylist()


def run_project(root: Path) -> None:
    run(load_config(root / "retail-etl.yaml", env={}))


def test_superstore_marts_equal_the_decimal_oracle(tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "p"
    shutil.copytree(GOLDEN, root, ignore=shutil.ignore_patterns("expected"))
    run_project(root)
    lines = oracle.superstore_lines(GOLDEN / "data" / "orders.csv")
    for mart, grain in (("daily_sales", ("sale_date",)), ("category_daily", ("sale_date", "category"))):
        expected = oracle.marts(lines, grain)
        rows = q(root, f"SELECT * FROM retail_etl.{mart}")
        actual = {tuple(r[g] for g in grain): {m: r[m] for m in MEASURES} for r in rows}
        assert actual == expected, mart
    enriched = {r["source_line"]: r for r in q(root, "SELECT * FROM retail_etl.sales_enriched")}
    assert enriched[5]["discount_amount"] == Decimal("783.4725") and enriched[5]["gross_amount"] == Decimal("1741.05")
    assert enriched[8]["net_amount"] == Decimal("281.372")  # three places kept at scale 4, not rounded to cents
    assert enriched[7]["cost_amount"] is None and enriched[7]["margin"] is None  # no profit given: unknown


def _percent_year() -> tuple[str, Decimal, Decimal, Decimal]:
    """A year of lines with whole quantities, cent prices and 5/10/12.5/15/25 % discounts; the CSV
    and the exact totals (net, discount), plus the net a per-line rounding to cents would give."""
    rnd = random.Random(12)
    out = ["receipt,line,day,store,sku,qty,price,pct"]
    net = disc = rounded = Decimal(0)
    day = dt.date(2023, 1, 1)
    for d in range(365):
        for n in range(12):
            qty, price = rnd.randint(1, 4), Decimal(rnd.randint(99, 4999)) / 100
            pct = rnd.choice(["5", "10", "12.5", "15", "25"])
            discount = qty * price * Decimal(pct) / 100
            net += qty * price - discount
            disc += discount
            rounded += qty * price - discount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
            out.append(f"R{d}-{n // 3},{n},{day + dt.timedelta(days=d)},S1,P{n},{qty},{price},{pct}")
    return "\n".join(out) + "\n", net, disc, rounded


def test_a_percentage_discount_is_applied_at_full_precision(tmp_path: Path) -> None:
    csv_text, net, discount, rounded = _percent_year()
    assert rounded != net  # rounding each line's discount to the cent would drift
    root = project(tmp_path, """
        lake: {root: lake}
        sources:
          till:
            entity: sales
            path: data/till.csv
            columns: {transaction_id: receipt, line_number: line, sale_date: day, store_id: store, product_id: sku,
                      quantity: qty, unit_price: price, discount_rate: pct}
            money: {discount_rate: percent}
            key: [transaction_id, line_number]
            unknown_products: keep
        """, {"till.csv": csv_text})
    run_project(root)
    (lines,) = q(root, "SELECT sum(net_amount) AS net, sum(discount_amount) AS discount, count(*) AS n, "
                       "max(discount_rate) AS top FROM retail_etl.sales_enriched")
    assert (lines["net"], lines["discount"], lines["n"], lines["top"]) == (net, discount, 365 * 12, Decimal("0.25"))
    (marts,) = q(root, "SELECT sum(net_revenue) AS net, sum(discounts) AS discount, "
                       "sum(gross_revenue) AS gross FROM retail_etl.daily_sales")
    assert (marts["net"], marts["discount"], marts["gross"]) == (net, discount, net + discount)


MASTER = "sku,name,cat,cost\nP1,Master Mug,Kitchen,1.2500\nP2,,Food,\n"
LINES = textwrap.dedent("""\
    receipt,day,sku,qty,net,name,cat,region,floor
    R1,2024-02-01,P1,2,10.00,Line Mug,Cups,North,1
    R1,2024-02-01,P2,1,3.00,Line Tea,Drinks,South,2
    R2,2024-02-01,P3,3,9.00,Line Jam,Spreads,North,0
    """)
HEAD = "lake: {root: lake}\nsources:"
MASTER_SOURCE = """
  master:
    entity: products
    path: data/master.csv
    columns: {product_id: sku, product_name: name, category: cat, unit_cost: cost}"""
SALES = """
  till:
    entity: sales
    path: data/till*.csv
    columns: {transaction_id: receipt, sale_date: day, product_id: sku, quantity: qty, net_amount: net,
              product_name: name, category: cat}
    defaults: {store_id: S1}
    attributes: {region: region, floor: {column: floor, type: INTEGER}}
    unknown_products: keep
    thresholds: {quarantine_rate: {fail: 0.9}}
"""


def test_cost_is_null_when_unknown_and_the_marts_count_those_lines(tmp_path: Path) -> None:
    root = project(tmp_path, HEAD + MASTER_SOURCE + SALES, {"master.csv": MASTER, "till.csv": LINES})
    run_project(root)
    rows = {r["product_id"]: r for r in q(root, "SELECT * FROM retail_etl.sales_enriched")}
    assert (rows["P1"]["cost_amount"], rows["P1"]["margin"]) == (Decimal("2.50"), Decimal("7.50"))
    for unknown in ("P2", "P3"):  # no unit cost in the master / not in the master
        assert (rows[unknown]["cost_amount"], rows[unknown]["margin"]) == (None, None)
    (day,) = q(root, "SELECT * FROM retail_etl.daily_sales")
    assert (day["cost"], day["margin"], day["lines_without_cost"], day["net_revenue"]) == (
        Decimal("2.50"), Decimal("7.50"), 2, Decimal("22.00"))
    by_category = {r["category"]: r for r in q(root, "SELECT * FROM retail_etl.category_daily")}
    assert by_category["Food"]["cost"] is None and by_category["Food"]["lines_without_cost"] == 1
    # The master wins where it has a value; the line fills in the rest.
    assert (rows["P1"]["product_name"], rows["P1"]["category"]) == ("Master Mug", "Kitchen")
    assert (rows["P2"]["product_name"], rows["P2"]["category"]) == ("Line Tea", "Food")
    assert (rows["P3"]["product_name"], rows["P3"]["category"]) == ("Line Jam", "Spreads")


def test_line_attributes_without_a_master_and_declared_attributes_are_typed_columns(tmp_path: Path) -> None:
    root = project(tmp_path, HEAD + SALES, {"till.csv": LINES})
    run_project(root)
    rows = {r["product_id"]: r for r in q(root, "SELECT * FROM retail_etl.sales_enriched")}
    assert [(rows[p]["product_name"], rows[p]["category"], rows[p]["region"], rows[p]["floor"]) for p in rows] == [
        ("Line Mug", "Cups", "North", 1), ("Line Tea", "Drinks", "South", 2), ("Line Jam", "Spreads", "North", 0)]
    (types,) = q(root, "SELECT typeof(floor) AS floor, typeof(region) AS region FROM retail_etl.sales_enriched LIMIT 1")
    assert types == {"floor": "INTEGER", "region": "VARCHAR"}


def test_declared_attributes_are_usable_in_rules(tmp_path: Path) -> None:
    rules = """    rules:
      - ColumnValues "floor" >= 1
      - rule: CustomSql "SELECT count(*) FROM primary WHERE region = 'North' AND floor > 5" = 0
        severity: fail
"""
    root = project(tmp_path, HEAD + SALES + rules, {"till.csv": LINES})
    run_project(root)
    (bad,) = q(root, "SELECT source_line, failed_rules FROM retail_etl.sales_quarantine")
    assert (bad["source_line"], bad["failed_rules"]) == (4, ["ColumnValues.floor"])
    (root / "data" / "till2.csv").write_text(LINES.replace("R1,", "R7,").replace("North,1", "North,9"),
                                             encoding="utf-8")
    with pytest.raises(QualityGateError, match="CustomSql"):
        run_project(root)


def test_an_attribute_declared_later_is_null_on_the_lines_validated_before(tmp_path: Path) -> None:
    without = SALES.replace("    attributes: {region: region, floor: {column: floor, type: INTEGER}}\n", "")
    root = project(tmp_path, HEAD + without, {"till.csv": LINES})
    run_project(root)
    (root / "retail-etl.yaml").write_text(HEAD + SALES, encoding="utf-8")
    (root / "data" / "till2.csv").write_text(LINES.replace("R1,", "R7,").replace("R2,", "R8,")
                                             .replace("2024-02-01", "2024-02-02"), encoding="utf-8")
    run_project(root)
    rows = q(root, "SELECT sale_date, region, floor FROM retail_etl.sales_enriched ORDER BY sale_date, source_line")
    assert [(r["region"], r["floor"]) for r in rows] == [
        (None, None), (None, None), (None, None), ("North", 1), ("South", 2), ("North", 0)]
