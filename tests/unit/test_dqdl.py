"""Parsing DQDL rules into the AST."""

from __future__ import annotations

from decimal import Decimal

import pytest

from retail_etl.errors import RuleSyntaxError
from retail_etl.quality.dqdl import (
    ColumnLength,
    ColumnValues,
    Condition,
    CustomSql,
    IsComplete,
    IsUnique,
    Now,
    ReferentialIntegrity,
    RowCount,
    parse_rule,
)

D = Decimal


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('IsComplete "customer_id"', IsComplete("", "customer_id")),
        ('IsUnique "transaction_id"', IsUnique("", ("transaction_id",))),
        ('IsUnique "transaction_id" "line_number"', IsUnique("", ("transaction_id", "line_number"))),
        ('ColumnValues "quantity" > 0', ColumnValues("", "quantity", Condition(">", (D(0),)))),
        ('ColumnValues "quantity" >= -3.5', ColumnValues("", "quantity", Condition(">=", (D("-3.5"),)))),
        ('ColumnValues "quantity" != 1e3', ColumnValues("", "quantity", Condition("!=", (D(1000),)))),
        ('ColumnValues "quantity" between 1 and 10', ColumnValues("", "quantity", Condition("between", (D(1), D(10))))),
        ('ColumnValues "channel" in ["web","store",1]', ColumnValues("", "channel", Condition("in", ("web", "store", D(1))))),
        ('ColumnValues "channel" not in ["fax"]', ColumnValues("", "channel", Condition("not in", ("fax",)))),
        (r'ColumnValues "store_id" matches "S\d+"', ColumnValues("", "store_id", Condition("matches", (r"S\d+",)))),
        ('ColumnValues "c" = "say \\"hi\\" \\\\"', ColumnValues("", "c", Condition("=", ('say "hi" \\',)))),
        ('ColumnValues "sale_date" >= "2024-01-01"', ColumnValues("", "sale_date", Condition(">=", ("2024-01-01",)))),
        ('ColumnValues "sold_at" <= now()', ColumnValues("", "sold_at", Condition("<=", (Now(),)))),
        (
            'ColumnValues "sold_at" between (now() - 3 days) and (now() + 1 hours)',
            ColumnValues("", "sold_at", Condition("between", (Now(-3, "days"), Now(1, "hours")))),
        ),
        ('ColumnLength "store_id" <= 5', ColumnLength("", "store_id", Condition("<=", (D(5),)))),
        ('ColumnLength "store_id" between 2 and 5', ColumnLength("", "store_id", Condition("between", (D(2), D(5))))),
        (
            'ReferentialIntegrity "product_id" "products.product_id" = 1.0',
            ReferentialIntegrity("", "product_id", "products", "product_id", Condition("=", (D("1.0"),))),
        ),
        (
            'ReferentialIntegrity "product_id" "products.product_id" >= 0.99',
            ReferentialIntegrity("", "product_id", "products", "product_id", Condition(">=", (D("0.99"),))),
        ),
        ("RowCount > 0", RowCount("", Condition(">", (D(0),)))),
        ("RowCount between 10 and 20", RowCount("", Condition("between", (D(10), D(20))))),
        (
            'CustomSql "SELECT COUNT(*) FROM primary WHERE quantity < 0" = 0',
            CustomSql("", "SELECT COUNT(*) FROM primary WHERE quantity < 0", Condition("=", (D(0),))),
        ),
        ('CustomSql "SELECT 1" between 0 and 2', CustomSql("", "SELECT 1", Condition("between", (D(0), D(2))))),
    ],
)
def test_parses_every_rule_type(text: str, expected: object) -> None:
    rule = parse_rule(text)
    assert rule == expected
    assert rule.text == text


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ('IsUnique "a" "b"', '  IsUnique\t"a"\n   "b"  '),
        ('ColumnValues "q" in ["x", 1]', 'ColumnValues "q" in[ "x" ,1 ]'),
        ('ColumnValues "t" > (now() - 3 days)', 'ColumnValues  "t">(  now ( ) -3 days )'),
        ('ColumnValues "t" > (now() - 3 days)', 'ColumnValues "t" > now() - 3 days'),
        ("RowCount between 1 and 2", "RowCount   between 1   and 2"),
    ],
)
def test_whitespace_variants_are_equivalent(a: str, b: str) -> None:
    assert parse_rule(a) == parse_rule(b)


@pytest.mark.parametrize(
    ("text", "kind", "columns", "row_level", "default_id"),
    [
        ('IsComplete "customer_id"', "IsComplete", ("customer_id",), True, "IsComplete.customer_id"),
        ('IsUnique "transaction_id" "line_number"', "IsUnique", ("transaction_id", "line_number"), True,
         "IsUnique.transaction_id.line_number"),
        ('ColumnValues "quantity" > 0', "ColumnValues", ("quantity",), True, "ColumnValues.quantity"),
        ('ColumnLength "unit price" < 3', "ColumnLength", ("unit price",), True, "ColumnLength.unit_price"),
        ('ReferentialIntegrity "product_id" "products.product_id" = 1', "ReferentialIntegrity", ("product_id",),
         True, "ReferentialIntegrity.product_id"),
        ("RowCount > 0", "RowCount", (), False, "RowCount"),
        ('CustomSql "SELECT 1" = 1', "CustomSql", (), False, "CustomSql"),
    ],
)
def test_rule_metadata(text: str, kind: str, columns: tuple[str, ...], row_level: bool, default_id: str) -> None:
    rule = parse_rule(text)
    assert (rule.kind, rule.columns, rule.row_level, rule.default_id) == (kind, columns, row_level, default_id)


@pytest.mark.parametrize(
    "condition",
    ['> -1.5', 'between "2024-01-01" and now()', 'in ["a", "b\\"", 3]', 'not in [1]', r'matches "\d+\\"',
     "<= (now() - 2 hours)"],
)
def test_condition_str_round_trips(condition: str) -> None:
    rule = parse_rule(f'ColumnValues "c" {condition}')
    assert isinstance(rule, ColumnValues)
    assert parse_rule(f'ColumnValues "c" {rule.condition}') == rule


@pytest.mark.parametrize(
    ("condition", "value", "expected"),
    [
        ("= 5", 5, True),
        ("= 0.1", 0.1, True),
        ("!= 5", 5.0, False),
        ("> 5", 5, False),
        (">= 5", 5, True),
        ("< 0.99", 0.989, True),
        ("<= 0.99", 0.995, False),
        ("between 1 and 3", 3, True),
        ("between 1 and 3", 3.5, False),
        ("in [1, 2]", 2, True),
        ("not in [1, 2]", 2, False),
    ],
)
def test_condition_check(condition: str, value: float, expected: bool) -> None:
    rule = parse_rule(f"RowCount {condition}")
    assert isinstance(rule, RowCount)
    assert rule.condition.check(value) is expected


def test_condition_check_rejects_non_numbers() -> None:
    rule = parse_rule('ColumnValues "c" = "x"')
    assert isinstance(rule, ColumnValues)
    with pytest.raises(TypeError):
        rule.condition.check(1)


def _error(text: str) -> RuleSyntaxError:
    with pytest.raises(RuleSyntaxError) as info:
        parse_rule(text)
    return info.value


def test_unknown_rule_suggests_and_lists_supported_types() -> None:
    err = _error('IsComplet "customer_id"')
    assert "unknown rule type 'IsComplet'" in err.message
    assert err.hint is not None and "did you mean IsComplete?" in err.hint
    assert "ReferentialIntegrity" in err.hint and "CustomSql" in err.hint


def test_keywords_are_case_sensitive() -> None:
    assert "did you mean IsComplete?" in (_error('iscomplete "a"').hint or "")
    assert "expected an operator" in _error('ColumnValues "q" BETWEEN 1 and 2').message


def test_error_quotes_rule_and_points_at_column() -> None:
    text = 'ColumnValues "quantity" => 0'
    lines = _error(text).message.splitlines()
    assert lines[0] == (
        "expected an operator (=, !=, >, >=, <, <=), 'between', 'in', 'not in' or 'matches', "
        "got '=>' at column 25 of the rule:"
    )
    assert lines[1].strip() == text
    assert lines[2].index("^") - lines[1].index("C") == 24


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("IsComplete customer_id", 'expected a quoted column name ("..."), got \'customer_id\' at column 12'),
        ('IsComplete "customer_id', "unterminated string: expected a closing '\"' at column 12"),
        ('IsComplete ""', "empty column name"),
        ('ColumnValues "q" == 1', "expected an operator (=, !=, >, >=, <, <=), 'between', 'in', 'not in' or 'matches', got '=='"),
        ('ColumnValues "q"', "got the end of the rule"),
        ('RowCount matches "x"', "expected an operator (=, !=, >, >=, <, <=), 'between', 'in' or 'not in', got 'matches'"),
        ("RowCount > 1.2.3", "invalid number '1.2.3' at column 12"),
        ("RowCount > 12abc", "invalid number '12abc'"),
        ('RowCount > "10"', "expected a number, got '\"10\"'"),
        ('ColumnLength "s" < x', "expected a number, got 'x'"),
        ('ColumnValues "c" in []', "expected at least one value in the list, got ']' at column 22"),
        ('ColumnValues "c" in ["a",]', "expected a value"),
        ('ColumnValues "c" in ["a"', "expected ',' or ']', got the end of the rule"),
        ('ColumnValues "c" between 1 2', "expected 'and', got '2'"),
        ('ColumnValues "c" not matches "x"', "expected 'in' after 'not'"),
        ('ColumnValues "c" matches 3', 'expected a quoted regular expression'),
        ('ColumnValues "t" > (now() - 3 weeks)', "expected a time unit (days, hours or minutes), got 'weeks'"),
        ('ColumnValues "t" > (now() - 1.5 days)', "expected a whole number"),
        ('ColumnValues "t" > (now() - 1 days', "expected ')', got the end of the rule"),
        ('IsComplete "a" extra', "unexpected 'extra' after the end of the rule at column 16"),
        ('RowCount > 0 0', "unexpected '0' after the end of the rule"),
        ('ReferentialIntegrity "p" "products" = 1', 'expected a reference "table.column"'),
        ('ReferentialIntegrity "p" "products.product_id" >= 2', "share of matching rows between 0 and 1"),
        ('CustomSql "  " = 0', "empty SQL query"),
        ('IsComplete "a" # note', "unexpected character '#'"),
        ('"a" IsComplete', "expected a rule type"),
    ],
)
def test_syntax_errors(text: str, fragment: str) -> None:
    assert fragment in _error(text).message


def test_empty_rule() -> None:
    err = _error("   ")
    assert err.message == "empty rule" and "IsComplete" in (err.hint or "")
