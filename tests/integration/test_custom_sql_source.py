"""CustomSql over the source's own columns (``source."<column>"``), end to end on DuckDB."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from retail_etl.config.loader import load_config
from retail_etl.errors import QualityGateError, SourceError
from retail_etl.pipeline import run
from retail_etl.query import run_query

CONFIG = """\
lake: {root: lake}
sources:
  till:
    entity: sales
    path: data/till*.csv
    columns: {transaction_id: receipt, sale_date: day, product_id: sku, quantity: qty, net_amount: net}
    defaults: {store_id: S1}
    unknown_products: keep
    thresholds: {quarantine_rate: {fail: 0.9}}
    rules:
      - ColumnValues "quantity" > 0
      - rule: CustomSql "SELECT count(*) FROM primary WHERE source.\\"Coupon Code\\" IS NOT NULL AND net_amount < 5" = 1
        severity: warn
      - rule: CustomSql "SELECT count(*) FROM primary WHERE source.\\"Coupon Code\\" = 'EXPIRED'" = 0
        severity: fail
"""
LINES = textwrap.dedent("""\
    receipt,day,sku,qty,net,Coupon Code
    R1,2024-02-01,P1,2,10.00,SPRING
    R1,2024-02-01,P2,1,3.00,  SPRING
    R2,2024-02-01,P3,0,9.00,
    R3,2024-02-01,P1,1,4.00,   
    """)


def _project(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "till.csv").write_text(LINES, encoding="utf-8")
    (tmp_path / "retail-etl.yaml").write_text(CONFIG, encoding="utf-8")
    return tmp_path


def _q(root: Path, sql: str) -> list[dict]:
    return run_query(load_config(root / "retail-etl.yaml", env={}), sql).to_pylist()


def test_custom_sql_measures_an_unmapped_source_column(tmp_path: Path) -> None:
    root = _project(tmp_path)
    run(load_config(root / "retail-etl.yaml", env={}))
    quarantined = _q(root, "SELECT source_line, failed_rules FROM retail_etl.sales_quarantine")
    assert [(r["source_line"], r["failed_rules"]) for r in quarantined] == [(4, ["ColumnValues.quantity"])]
    valid = _q(root, "SELECT source_line FROM retail_etl.sales_validated ORDER BY source_line")
    assert [r["source_line"] for r in valid] == [2, 3, 5]
    (counts,) = _q(root, "SELECT rows_read, rows_valid, rows_quarantined FROM retail_etl.quality_runs")
    assert counts == {"rows_read": 4, "rows_valid": 3, "rows_quarantined": 1}
    metrics = {r["rule"]: (r["value"], r["passed"]) for r in _q(
        root, "SELECT rule, value, passed FROM retail_etl.quality_metrics WHERE level = 'dataset'")}
    # Line 3 only: its coupon is "SPRING" once trimmed; line 5's blank coupon is NULL.
    assert [v for k, v in metrics.items() if "net_amount < 5" in k] == [(1.0, True)]
    assert [v for k, v in metrics.items() if "EXPIRED" in k] == [(0.0, True)]
    assert "_source_" not in " ".join(_q(root, "SELECT * FROM retail_etl.sales_validated LIMIT 1")[0])


def test_a_breached_custom_sql_over_a_source_column_fails_the_gate(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "data" / "till2.csv").write_text(LINES.replace("R1,", "R7,").replace(",SPRING", ",EXPIRED"),
                                             encoding="utf-8")
    with pytest.raises(QualityGateError, match="EXPIRED"):
        run(load_config(root / "retail-etl.yaml", env={}))


def test_the_named_source_column_is_required_in_the_header(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "data" / "till.csv").write_text(LINES.replace(",Coupon Code", ",Coupon"), encoding="utf-8")
    with pytest.raises(SourceError, match="'Coupon Code'"):
        run(load_config(root / "retail-etl.yaml", env={}))
