"""Mapping a source's raw text columns onto the canonical model."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import duckdb
import pytest

from retail_etl.config.model import SourceConfig
from retail_etl.sources.mapping import MappingError, parse_failures, plan_source


#: The columns of a till export that gives unit prices rather than line totals.
PRICED_COLUMNS = {
    "transaction_id": "Bon",
    "sold_at": {"column": "Datum", "format": "%d.%m.%Y %H:%M"},
    "store_id": "Filiale",
    "product_id": "Artikel",
    "quantity": "Menge",
    "unit_price": "Preis",
}


def _source(**overrides) -> SourceConfig:
    base = {
        "entity": "sales",
        "path": "x.csv",
        "columns": {
            "transaction_id": "Bon",
            "sold_at": {"column": "Datum", "format": "%d.%m.%Y %H:%M"},
            "store_id": "Filiale",
            "product_id": "Artikel",
            "quantity": "Menge",
            "net_amount": "Betrag",
        },
    }
    base.update(overrides)
    return SourceConfig.model_validate(base)


def _run(source: SourceConfig, rows: list[tuple]) -> list[dict]:
    plan = plan_source("s", source)
    con = duckdb.connect()
    cols = ", ".join(f'"{c}" VARCHAR' for c in plan.raw_columns)
    con.execute(f"CREATE TABLE raw ({cols})")
    con.executemany(f"INSERT INTO raw VALUES ({', '.join('?' for _ in plan.raw_columns)})", rows)
    select = ", ".join(e.sql("duckdb") for e in plan.projection())
    checks = ", ".join(passes.sql("duckdb") + f' AS "{cid}"' for cid, passes, _ in parse_failures(plan))
    res = con.execute(f"SELECT {select}, {checks} FROM raw")
    names = [d[0] for d in res.description]
    return [dict(zip(names, r, strict=True)) for r in res.fetchall()]


def test_german_extract_with_line_totals_only() -> None:
    source = _source(csv={"decimal_separator": ",", "thousands_separator": "."}, defaults={"currency": "EUR"})
    (row,) = _run(source, [("B1", "05.03.2024 14:30", "f01", "a-1", "2", "1.234,50")])
    assert row["sold_at"] == dt.datetime(2024, 3, 5, 14, 30)
    assert row["sale_date"] == dt.date(2024, 3, 5)
    assert row["net_amount"] == Decimal("1234.50")
    assert row["discount_amount"] == Decimal("0.00")
    # unit price derived from the line total: (net + discount) / quantity
    assert row["unit_price"] == Decimal("617.2500")
    assert row["currency"] == "EUR"
    assert all(row[k] for k in row if k.startswith("Parse."))


def test_unparseable_values_fail_their_parse_check() -> None:
    rows = _run(_source(), [("B1", "2024-03-05", "f01", "a-1", "zwei", "3.50"), ("B2", "", "f01", "a", "1", "1")])
    bad, blank = rows
    assert bad["sold_at"] is None and bad["Parse.sold_at"] is False
    assert bad["quantity"] is None and bad["Parse.quantity"] is False
    assert bad["Parse.net_amount"] is True
    # a blank value is missing, not malformed: completeness rules decide about it
    assert blank["sold_at"] is None and blank["Parse.sold_at"] is True


def test_standardize_trims_cases_and_maps_values() -> None:
    source = _source(
        columns={**_source().columns, "payment_method": "Zahlart"},
        standardize={"payment_method": {"case": "lower", "values": {"ec": "card", "bar": "cash"}},
                     "store_id": {"case": "upper"}},
    )
    rows = _run(source, [("B1", "05.03.2024 10:00", " f01 ", "a", "1", "1", " EC "),
                         ("B2", "05.03.2024 10:00", "f02", "a", "1", "1", "Bar"),
                         ("B3", "05.03.2024 10:00", "f02", "a", "1", "1", "   ")])
    assert [r["payment_method"] for r in rows] == ["card", "cash", None]
    assert rows[0]["store_id"] == "F01"


def test_derived_columns_are_inlined_in_dependency_order() -> None:
    source = _source(
        columns={k: v for k, v in _source().columns.items() if k != "net_amount"} | {"unit_price": "Preis"},
        derived={"discount_amount": "round(quantity * unit_price * 0.1, 2)"},
    )
    (row,) = _run(source, [("B1", "05.03.2024 10:00", "f", "a", "3", "2.50")])
    assert row["discount_amount"] == Decimal("0.75")
    assert row["net_amount"] == Decimal("6.75")  # default formula over the derived discount


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"derived": {"net_amount": "quantity * 2"}}, "both mapped and derived"),
        ({"columns": {"transaction_id": "Bon", "sold_at": "D", "product_id": "A", "quantity": "M", "net_amount": "B"}},
         "required canonical column 'store_id'"),
        ({"columns": {"transaction_id": "Bon", "store_id": "S", "product_id": "A", "quantity": "M", "net_amount": "B"}},
         "at least one of sold_at, sale_date"),
        ({"derived": {"unit_price": "net_amount / line_number", "line_number": "unit_price * 2"}}, "cycle"),
        ({"key": ["transaction_id", "line"]}, "key column 'line'"),
        ({"standardize": {"payment": {"case": "lower"}}}, "'payment' is not a column"),
    ],
)
def test_mapping_errors(overrides: dict, message: str) -> None:
    with pytest.raises(MappingError, match=message):
        plan_source("s", _source(**overrides))


def test_blank_discount_is_zero_but_garbage_is_a_parse_failure() -> None:
    source = _source(columns={**_source().columns, "discount_amount": "Rabatt"})
    blank, garbage = _run(source, [("B1", "05.03.2024 10:00", "f", "a", "2", "5,00".replace(",", "."), ""),
                                   ("B2", "05.03.2024 10:00", "f", "a", "2", "5.00", "abc")])
    assert blank["discount_amount"] == Decimal("0.00") and blank["Parse.discount_amount"] is True
    assert garbage["Parse.discount_amount"] is False
