"""Values out of range or not in the source's number format are quarantined, never cast leniently."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from sqlglot import exp

sys.path.insert(0, str(Path(__file__).parent))
from test_mapping import PRICED_COLUMNS as _PRICED  # noqa: E402
from test_mapping import _run, _source  # noqa: E402

from retail_etl.sources.mapping import _fits, parse_failures, plan_source  # noqa: E402



def _line(quantity: str, price: str = "3.50") -> tuple:
    return ("B1", "05.03.2024 14:30", "f", "a", quantity, price)


def test_a_barcode_as_quantity_is_computed_without_an_engine_error() -> None:
    (row,) = _run(_source(columns=_PRICED), [_line("4006381333931")])
    # DECIMAL(18,2) holds it: the line is kept (a plausibility rule is the configuration's to declare)
    assert row["net_amount"] == Decimal("14022334668758.50")
    assert row["Range.net_amount"] is True


def test_an_amount_its_column_cannot_hold_is_a_range_failure() -> None:
    # 999 999 999 999 999 x 35.00 = 3.5e16: more than the 16 integer digits of DECIMAL(18,2)
    over, ok = _run(_source(columns=_PRICED), [_line("999999999999999", "35.00"), _line("2", "35.00")])
    assert over["net_amount"] is None
    assert over["Range.net_amount"] is False
    assert over["Parse.quantity"] is True and over["Parse.unit_price"] is True
    assert ok["net_amount"] == Decimal("70.00") and ok["Range.net_amount"] is True


@pytest.mark.parametrize(
    ("value", "fits"),
    [("9999999999999999.994", True), ("9999999999999999.995", False), ("-9999999999999999.995", False),
     ("-9999999999999999.99", True), ("0", True)],
)
def test_the_range_bound_accounts_for_rounding(value: str, fits: bool) -> None:
    # .994 rounds to 9999999999999999.99 (fits DECIMAL(18,2)), .995 to 10^16 (does not)
    condition = _fits(exp.Literal.number(value), "DECIMAL(18,2)")
    assert duckdb.connect().execute(f"SELECT {condition.sql('duckdb')}").fetchone()[0] is fits


def test_range_message_names_column_and_type() -> None:
    plan = plan_source("s", _source(columns=_PRICED))
    (msg,) = [m for cid, _, m in parse_failures(plan) if cid == "Range.net_amount"]
    assert msg.name == "net_amount overflows DECIMAL(18,2)"


@pytest.mark.parametrize(
    ("text", "parses", "value"),
    [
        ("3", True, 3),
        ("+3", True, 3),
        ("-3", True, -3),
        ("1.5", False, None),  # not rounded to 2
        ("2.0", False, None),
        ("1_000", False, None),  # not a digit separator of any declared format
        ("1e2", False, None),
        ("0x10", False, None),
        ("99999999999", False, None),  # beyond INTEGER
    ],
)
def test_an_integer_column_takes_whole_numbers_only(text: str, parses: bool, value: int | None) -> None:
    source = _source(columns={**_source().columns, "line_number": "Pos"})
    (row,) = _run(source, [("B1", "05.03.2024 14:30", "f", "a", "1", "1.00", text)])
    assert row["Parse.line_number"] is parses
    assert row["line_number"] == value


@pytest.mark.parametrize(
    ("text", "exponent", "parses", "value"),
    [
        ("1.25", False, True, Decimal("1.250")),
        (".5", False, True, Decimal("0.500")),
        ("1_000", False, False, None),
        ("1_000", True, False, None),
        ("1e-7", False, False, None),
        ("1e-7", True, False, None),  # DECIMAL(18,3) cannot hold it exactly: not silently 0.000
        ("1.5e3", False, False, None),
        ("1.5e3", True, True, Decimal("1500.000")),
        ("2E-3", True, True, Decimal("0.002")),
    ],
)
def test_decimals_follow_the_declared_number_format(text: str, exponent: bool, parses: bool, value) -> None:
    source = _source(csv={"exponent": exponent})
    (row,) = _run(source, [("B1", "05.03.2024 14:30", "f", "a", text, "1.00")])
    assert row["Parse.quantity"] is parses
    assert row["quantity"] == value


def test_thousands_separators_follow_the_declared_option_only() -> None:
    declared = _source(csv={"thousands_separator": ","})
    (row,) = _run(declared, [("B1", "05.03.2024 14:30", "f", "a", "1,000", "1.00")])
    assert row["quantity"] == Decimal("1000.000") and row["Parse.quantity"] is True
    (row,) = _run(_source(), [("B1", "05.03.2024 14:30", "f", "a", "1,000", "1.00")])
    assert row["quantity"] is None and row["Parse.quantity"] is False
