"""Source columns in SQL: the source namespace, a mapped column's expr, several formats, date + time."""

from __future__ import annotations

import datetime as dt
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

sys.path.insert(0, str(Path(__file__).parent))
from test_mapping import PRICED_COLUMNS as _BASE  # noqa: E402
from test_mapping import _run, _source  # noqa: E402

from retail_etl.sources.mapping import MappingError, plan_source  # noqa: E402



def test_a_derived_column_sums_source_columns_through_the_source_namespace() -> None:
    source = _source(
        columns=_BASE,
        attributes={"retail_discount": {"column": "Retail Discount", "type": "DECIMAL(18,2)"}},
        derived={"discount_amount": "coalesce(retail_discount, 0)"
                                    ' + coalesce(TRY_CAST(source."Coupon" AS DECIMAL(18,2)), 0)'
                                    ' + coalesce(TRY_CAST(source."Coupon Match" AS DECIMAL(18,2)), 0)'},
    )
    plan = plan_source("s", source)
    assert plan.raw_columns == ("Bon", "Datum", "Filiale", "Artikel", "Menge", "Preis", "Retail Discount",
                                "Coupon", "Coupon Match")
    full, blanks = _run(source, [("B1", "05.03.2024 14:30", "f", "a", "2", "5.00", "1.00", "0.50", " 0.25 "),
                                 ("B2", "05.03.2024 14:30", "f", "a", "1", "5.00", "", "  ", "")])
    assert full["discount_amount"] == Decimal("1.75")
    assert full["net_amount"] == Decimal("8.25")
    assert blanks["discount_amount"] == Decimal("0.00") and blanks["net_amount"] == Decimal("5.00")


def test_the_source_namespace_is_case_insensitive_and_other_qualifiers_are_refused() -> None:
    ok = _source(columns=_BASE, derived={"customer_id": 'upper(SOURCE."Kunde")'})
    (row,) = _run(ok, [("B1", "05.03.2024 14:30", "f", "a", "1", "1.00", " k17 ")])
    assert row["customer_id"] == "K17"
    with pytest.raises(MappingError, match=r"uses 'src.Kunde', which is not a canonical column"):
        plan_source("s", _source(columns=_BASE, derived={"customer_id": "src.Kunde"}))


def test_a_mapped_column_carries_an_expression_over_its_source_text() -> None:
    clean = {"column": "CustomerID", "expr": r"regexp_replace(value, '\.0$', '')"}
    source = _source(columns={**_BASE, "customer_id": clean})
    rows = _run(source, [("B1", "05.03.2024 14:30", "f", "a", "1", "1.00", " 17850.0 "),
                         ("B2", "05.03.2024 14:30", "f", "a", "1", "1.00", "17850.05"),
                         ("B3", "05.03.2024 14:30", "f", "a", "1", "1.00", "")])
    assert [r["customer_id"] for r in rows] == ["17850", "17850.05", None]


def test_an_expression_feeds_the_typed_parse_and_its_check() -> None:
    source = _source(columns={**_BASE, "quantity": {"column": "Menge", "expr": "replace(value, ' pcs', '')"}})
    good, bad = _run(source, [("B1", "05.03.2024 14:30", "f", "a", "3 pcs", "1.00"),
                              ("B2", "05.03.2024 14:30", "f", "a", "drei pcs", "1.00")])
    assert good["quantity"] == Decimal("3.000") and good["Parse.quantity"] is True
    assert bad["quantity"] is None and bad["Parse.quantity"] is False


def test_an_expression_may_use_only_value() -> None:
    with pytest.raises(MappingError, match="it can use only value"):
        plan_source("s", _source(columns={**_BASE, "customer_id": {"column": "K", "expr": "upper(other)"}}))


def test_formats_are_tried_in_order() -> None:
    source = _source(columns={**{k: v for k, v in _BASE.items() if k != "sold_at"},
                              "sale_date": {"column": "Datum", "format": ["%Y-%m-%d", "%d/%m/%Y", "%Y/%m/%d"]}})
    assert plan_source("s", source).raw_columns[-1] == "Datum"
    rows = _run(source, [("B1", "f", "a", "1", "1.00", "2024-03-05"), ("B2", "f", "a", "1", "1.00", "05/03/2024"),
                         ("B3", "f", "a", "1", "1.00", "2024/03/06"), ("B4", "f", "a", "1", "1.00", "03.05.2024")])
    assert [r["sale_date"] for r in rows] == [dt.date(2024, 3, 5), dt.date(2024, 3, 5), dt.date(2024, 3, 6), None]
    assert [r["Parse.sale_date"] for r in rows] == [True, True, True, False]


def test_sold_at_from_a_date_column_and_a_time_column() -> None:
    split = {"date": "D", "time": "T", "format": ["%d/%m/%Y %H:%M", "%Y-%m-%d %H:%M:%S"]}
    source = _source(columns={**_BASE, "sold_at": split})
    plan = plan_source("s", source)
    assert plan.raw_columns[:2] == ("Bon", "D")
    rows = _run(source, [("B1", " 05/03/2024", "14:30 ", "f", "a", "1", "1.00"),
                         ("B2", "2024-03-06", "09:15:07", "f", "a", "1", "1.00"),
                         ("B3", "2024-03-06", "", "f", "a", "1", "1.00")])
    assert [r["sold_at"] for r in rows] == [dt.datetime(2024, 3, 5, 14, 30), dt.datetime(2024, 3, 6, 9, 15, 7), None]
    assert rows[0]["sale_date"] == dt.date(2024, 3, 5)
    assert [r["Parse.sold_at"] for r in rows] == [True, True, False]


@pytest.mark.parametrize(
    ("spec", "message"),
    [({"date": "D"}, "date and time go together"), ({"column": "C", "date": "D", "time": "T"}, "either column"),
     ({"column": "C", "format": []}, "at least one pattern")],
)
def test_column_spec_errors(spec: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _source(columns={**_BASE, "sold_at": spec})


def test_custom_sql_source_columns_are_carried_and_required_in_the_header() -> None:
    source = _source(columns=_BASE, rules=[
        {"rule": 'CustomSql "SELECT COUNT(*) FROM primary WHERE source.\\"Coupon\\" IS NOT NULL '
                 'AND source.coupon <> source.\\"Store Name\\"" = 0', "severity": "warn"},
        {"rule": 'CustomSql "SELECT COUNT(*) FROM primary WHERE source.Menge IS NULL" = 0', "severity": "warn"},
    ])
    plan = plan_source("s", source)
    assert plan.carried == ("Coupon", "Store Name", "Menge")
    assert plan.raw_columns == ("Bon", "Datum", "Filiale", "Artikel", "Menge", "Preis", "Coupon", "Store Name")
