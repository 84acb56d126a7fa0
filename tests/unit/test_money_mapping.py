"""Money scales, discount rates, line cost and profit, and declared attributes in a source's mapping."""

from __future__ import annotations

from decimal import Decimal

import duckdb
import pytest

from retail_etl.config.model import SourceConfig
from retail_etl.model import Scales
from retail_etl.sources.mapping import MappingError, money_scales, plan_source

BASE = {"transaction_id": "t", "sale_date": "d", "store_id": "s", "product_id": "p", "quantity": "q"}


def _source(columns: dict, **overrides) -> SourceConfig:
    return SourceConfig.model_validate({"entity": "sales", "path": "x.csv", "columns": {**BASE, **columns},
                                        **overrides})


def _run(source: SourceConfig, row: dict[str, str], scales: Scales | None = None) -> dict:
    plan = plan_source("s", source, scales)
    con = duckdb.connect()
    con.execute("CREATE TABLE raw (" + ", ".join(f'"{c}" VARCHAR' for c in plan.raw_columns) + ")")
    con.execute("INSERT INTO raw VALUES (" + ", ".join("?" for _ in plan.raw_columns) + ")",
                [row.get(c, {"t": "T1", "d": "2024-01-02", "s": "S", "p": "P"}.get(c)) for c in plan.raw_columns])
    res = con.execute("SELECT " + ", ".join(e.sql("duckdb") for e in plan.projection()) + " FROM raw")
    return dict(zip([d[0] for d in res.description], res.fetchone(), strict=True))


def test_amounts_keep_the_source_scale_and_are_typed_at_the_table_scale() -> None:
    four = _source({"net_amount": "n"}, money={"scale": 4})
    two = _source({"net_amount": "n"})
    assert money_scales([four, two]) == Scales(money=4, lines=4)
    assert _run(four, {"q": "2", "n": "281.372"})["net_amount"] == Decimal("281.3720")
    # A scale-2 source in a table of scale 4: read at its own two places, then widened.
    row = _run(two, {"q": "2", "n": "281.372"}, Scales(4, 4))
    assert row["net_amount"] == Decimal("281.37") and str(row["net_amount"]) == "281.3700"


def test_a_percentage_on_the_gross_is_exact_at_six_more_places() -> None:
    source = _source({"unit_price": "u", "discount_rate": "r"}, money={"discount_rate": "percent"})
    assert money_scales([source]) == Scales(money=2, lines=8)
    row = _run(source, {"q": "3", "u": "0.99", "r": "12.5"})
    assert (row["discount_rate"], row["discount_amount"], row["net_amount"]) == (
        Decimal("0.125"), Decimal("0.37125"), Decimal("2.59875"))
    assert _run(source, {"q": "3", "u": "0.99", "r": ""})["discount_amount"] == 0  # a blank rate: no discount


def test_a_fraction_on_the_paid_amount_and_the_line_profit() -> None:
    source = _source({"net_amount": "n", "discount_rate": "r", "margin": "m"}, money={"scale": 4})
    row = _run(source, {"q": "5", "n": "957.5775", "r": "0.45", "m": "-383.031"})
    assert (row["discount_amount"], row["unit_price"]) == (Decimal("783.4725"), Decimal("348.2100"))
    assert (row["cost_amount"], row["unit_cost"], row["margin"]) == (
        Decimal("1340.6085"), Decimal("268.1217"), Decimal("-383.0310"))
    unknown = _run(source, {"q": "5", "n": "957.5775", "r": "0.45", "m": ""})
    assert (unknown["cost_amount"], unknown["unit_cost"], unknown["margin"]) == (None, None, None)


def test_a_line_unit_cost_gives_cost_and_margin() -> None:
    row = _run(_source({"net_amount": "n", "unit_cost": "c"}), {"q": "3", "n": "10.00", "c": "1.2345"})
    assert (row["cost_amount"], row["margin"]) == (Decimal("3.70"), Decimal("6.30"))


def test_declared_attributes_are_typed_and_may_not_shadow_canonical_columns() -> None:
    source = _source({"net_amount": "n"}, attributes={"region": "Region", "floor": {"column": "F", "type": "integer"}})
    row = _run(source, {"q": "1", "n": "1", "Region": " North ", "F": "3"})
    assert (row["region"], row["floor"]) == ("North", 3)
    with pytest.raises(MappingError, match="clashes"):
        plan_source("s", _source({"net_amount": "n"}, attributes={"category": "Cat"}))
    with pytest.raises(ValueError, match="not an attribute type"):
        _source({"net_amount": "n"}, attributes={"x": {"column": "X", "type": "BLOB"}})
