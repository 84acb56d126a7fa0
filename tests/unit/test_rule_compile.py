"""Compiling DQDL rules to SQL, checked by running the DuckDB rendering on a small table."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from retail_etl.engines.sql import to_spark
from retail_etl.errors import ConfigError, RuleSyntaxError
from retail_etl.quality.compile import dataset_metric, dataset_passes, failure_message, row_check
from retail_etl.quality.dqdl import parse_rule

TABLES = {"products": "products_v"}
ORDER = [exp.column("source_file"), exp.column("source_line")]

# Rows are inserted in reverse source order, so "first" comes from ORDER, not storage.
SALES = """
CREATE TABLE sales_v AS SELECT * FROM (VALUES
  (6, 'T2', 1,    DATE '2024-01-01',    now()::TIMESTAMP - INTERVAL 30 MINUTE, 'S01x',  'P3',     'C6', 1.000,  'web'),
  (5, NULL, NULL, DATE '2024-06-01',    now()::TIMESTAMP - INTERVAL 2 DAY,     NULL,    'P1',     'C5', NULL,   '1'),
  (4, 'T1', 1,    current_date + 5,     NULL,                                  'X1',    NULL,     '',   10.125, 'fax'),
  (3, 'T2', 1,    NULL,                 now()::TIMESTAMP + INTERVAL 2 DAY,     'S0003', 'P99999', '  ', 0,      NULL),
  (2, 'T1', 2,    DATE '2023-12-31',    now()::TIMESTAMP - INTERVAL 10 DAY,    'S2',    'P2',     NULL, -3,     'store'),
  (1, 'T1', 1,    current_date - 1,     now()::TIMESTAMP - INTERVAL 1 HOUR,    'S01',   'P1',     'C1', 2.5,    'web')
) AS t(source_line, transaction_id, line_number, sale_date, sold_at, store_id, product_id, customer_id, quantity,
       channel);
ALTER TABLE sales_v ALTER quantity TYPE DECIMAL(18,3);
ALTER TABLE sales_v ALTER line_number TYPE INTEGER;
ALTER TABLE sales_v ADD COLUMN source_file VARCHAR DEFAULT 'sales.csv';
CREATE TABLE products_v AS SELECT * FROM (VALUES ('P1'), ('P2'), (NULL)) AS t(product_id);
CREATE TABLE empty_v AS SELECT * FROM sales_v LIMIT 0;
"""


@pytest.fixture(scope="module")
def db() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    con.execute(SALES)
    yield con
    con.close()


T, F = True, False

ROW_CASES = [
    ('IsComplete "customer_id"', [T, F, F, F, T, T]),
    ('IsComplete "quantity"', [T, T, T, T, F, T]),
    ('IsComplete "sale_date"', [T, T, F, T, T, T]),
    ('IsUnique "transaction_id" "line_number"', [T, T, T, F, T, F]),
    ('IsUnique "transaction_id"', [T, F, T, F, T, F]),
    ('ColumnValues "quantity" > 0', [T, F, F, T, T, T]),
    ('ColumnValues "quantity" between -3 and 2.5', [T, T, T, F, T, T]),
    ('ColumnValues "quantity" = 10.125', [F, F, F, T, T, F]),
    ('ColumnValues "quantity" in [0, 1, 2.5]', [T, F, T, F, T, T]),
    ('ColumnValues "line_number" != 1', [F, T, F, F, T, F]),
    ('ColumnValues "channel" in ["web", "store"]', [T, T, T, F, F, T]),
    ('ColumnValues "channel" not in ["fax", 1]', [T, T, T, F, F, T]),
    (r'ColumnValues "store_id" matches "S\d+"', [T, T, T, F, T, F]),
    ('ColumnValues "store_id" matches "S0|S2"', [F, T, F, F, T, F]),
    ('ColumnValues "quantity" matches "-?\\d\\.\\d+"', [T, T, T, F, T, T]),
    ('ColumnValues "sale_date" >= "2024-01-01"', [T, F, T, T, T, T]),
    ('ColumnValues "sale_date" <= now()', [T, T, T, F, T, T]),
    ('ColumnValues "sale_date" between (now() - 3 days) and now()', [T, F, T, F, F, F]),
    ('ColumnValues "sold_at" > (now() - 1 days)', [T, F, T, T, F, T]),
    ('ColumnValues "sold_at" <= (now() + 1 hours)', [T, T, F, T, T, T]),
    ('ColumnValues "sold_at" < "2000-01-01 00:00:00"', [F, F, F, T, F, F]),
    ('ColumnLength "store_id" between 2 and 3', [T, T, F, T, T, F]),
    ('ColumnLength "store_id" <= 2', [F, T, F, T, T, F]),
    ('ColumnLength "quantity" = 5', [T, F, T, F, T, T]),
    ('ReferentialIntegrity "product_id" "products.product_id" = 1.0', [T, T, F, T, T, F]),
]


@pytest.mark.parametrize(("text", "expected"), ROW_CASES)
def test_row_check_in_duckdb(db: duckdb.DuckDBPyConnection, text: str, expected: list[bool]) -> None:
    check = row_check(parse_rule(text), tables=TABLES, order_by=ORDER)
    sql = f"SELECT {check.sql(dialect='duckdb')} FROM sales_v ORDER BY source_line"
    assert [r[0] for r in db.execute(sql).fetchall()] == expected  # never NULL


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('ColumnValues "quantity" > 0', 2, "quantity must be > 0, got -3.000"),
        ('IsComplete "customer_id"', 2, "customer_id is missing"),
        ('ReferentialIntegrity "product_id" "products.product_id" = 1.0', 3,
         "product_id 'P99999' not found in products.product_id"),
        ('IsUnique "transaction_id" "line_number"', 4, "transaction_id+line_number duplicates an earlier row: 'T1', 1"),
        ('ColumnLength "store_id" between 2 and 3', 3, "store_id length must be between 2 and 3, got 5 ('S0003')"),
        (r'ColumnValues "store_id" matches "S\d+"', 4, "store_id must match \"S\\d+\", got 'X1'"),
        ('ColumnValues "channel" not in ["fax", 1]', 4, "channel must not be in [\"fax\", 1], got 'fax'"),
        ('ColumnValues "sale_date" >= "2024-01-01"', 2, 'sale_date must be >= "2024-01-01", got 2023-12-31'),
    ],
)
def test_failure_message(db: duckdb.DuckDBPyConnection, text: str, line: int, message: str) -> None:
    rule = parse_rule(text)
    sql = exp.select(failure_message(rule)).from_("sales_v").where(f"source_line = {line}").sql(dialect="duckdb")
    assert db.execute(sql).fetchone() == (message,)


@pytest.mark.parametrize(
    ("text", "value", "passes"),
    [
        ("RowCount = 6", 6, T),
        ("RowCount between 1 and 5", 6, F),
        ('CustomSql "SELECT COUNT(*) FROM primary WHERE quantity < 0" = 1', 1, T),
        ('CustomSql "select count(*) from PRIMARY p join products on p.product_id = products.product_id" > 3', 3, F),
        ('CustomSql "SELECT MAX(primary.quantity) FROM primary" <= 10.125', 10.125, T),
        ('ReferentialIntegrity "product_id" "products.product_id" >= 0.6', 0.6, T),
        ('ReferentialIntegrity "product_id" "products.product_id" = 1.0', 0.6, F),
        ('IsComplete "customer_id"', 0.5, F),
        ('IsComplete "transaction_id"', 5 / 6, F),
        ('IsUnique "transaction_id" "line_number"', 4 / 6, F),
        ('ColumnValues "quantity" >= -3', 1.0, T),
        ('ColumnLength "store_id" <= 2', 0.5, F),
    ],
)
def test_dataset_metric(db: duckdb.DuckDBPyConnection, text: str, value: float, passes: bool) -> None:
    rule = parse_rule(text)
    sql = dataset_metric(rule, relation="sales_v", tables=TABLES).sql(dialect="duckdb")
    (got,) = db.execute(sql).fetchone()  # type: ignore[misc]
    assert float(got) == pytest.approx(value)
    assert dataset_passes(rule, got) is passes


@pytest.mark.parametrize("text", [text for text, _ in ROW_CASES])
def test_share_of_empty_relation_passes(db: duckdb.DuckDBPyConnection, text: str) -> None:
    rule = parse_rule(text)
    (got,) = db.execute(dataset_metric(rule, relation="empty_v", tables=TABLES).sql("duckdb")).fetchone()  # type: ignore[misc]
    assert got == 1.0 and dataset_passes(rule, got)


def test_null_metric_fails() -> None:
    assert dataset_passes(parse_rule("RowCount >= 0"), None) is False


@pytest.mark.parametrize(
    "text",
    [text for text, _ in ROW_CASES]
    + ["RowCount > 0", 'CustomSql "SELECT COUNT(*) FROM primary p JOIN products USING (product_id)" > 0'],
)
def test_renders_for_spark(text: str) -> None:
    rule = parse_rule(text)
    parts = [dataset_metric(rule, relation="db.sales", tables=TABLES)]
    if rule.row_level:
        parts += [row_check(rule, tables=TABLES, order_by=ORDER), failure_message(rule)]
    for part in parts:
        assert part.sql(dialect="spark", unsupported_level=ErrorLevel.RAISE)


def test_spark_regex_is_anchored_and_escaped() -> None:
    sql = row_check(parse_rule(r'ColumnValues "store_id" matches "S\d+"'), tables={}).sql(dialect="spark")
    assert sql == r"`store_id` IS NULL OR `store_id` RLIKE '^(?:S\\d+)$'"


def test_user_values_stay_literals(db: duckdb.DuckDBPyConnection) -> None:
    rule = parse_rule("""ColumnValues "channel" = "x' OR 1=1 --" """)
    sql = f"SELECT count(*) FILTER (WHERE {row_check(rule, tables={}).sql('duckdb')}) FROM sales_v"
    assert db.execute(sql).fetchone() == (1,)  # only the NULL channel passes


def test_unknown_reference_table_is_config_error() -> None:
    rule = parse_rule('ReferentialIntegrity "product_id" "stores.store_id" = 1')
    with pytest.raises(ConfigError, match="ReferentialIntegrity .*unknown table 'stores'") as info:
        row_check(rule, tables=TABLES)
    assert "products" in (info.value.hint or "")


@pytest.mark.parametrize(
    "sql", ["DELETE FROM primary", "SELECT * FROM primary", "SELECT 1, 2", "SELECT 1; SELECT 2", "SELECT (1", "SELECT 'x"]
)
def test_custom_sql_must_be_one_select_of_one_value(sql: str) -> None:
    rule = parse_rule(f'CustomSql "{sql}" = 0')
    with pytest.raises(RuleSyntaxError, match="CustomSql"):
        dataset_metric(rule, relation="sales_v", tables=TABLES)


def test_row_level_only_functions_reject_dataset_rules() -> None:
    with pytest.raises(ValueError):
        row_check(parse_rule("RowCount > 0"), tables={})
    with pytest.raises(ValueError):
        failure_message(parse_rule('CustomSql "SELECT 1" = 1'))
    with pytest.raises(ValueError, match="order_by"):
        row_check(parse_rule('IsUnique "transaction_id"'), tables={})


def test_custom_sql_reads_a_source_column_through_the_source_namespace(db: duckdb.DuckDBPyConnection) -> None:
    rule = parse_rule('CustomSql "SELECT COUNT(*) FROM primary p WHERE source.\\"Coupon\\" IS NOT NULL '
                      'AND SOURCE.coupon <> p.channel" = 1')
    query = dataset_metric(rule, relation="coupons_v", tables=TABLES)
    assert '"_source_coupon"' in query.sql(dialect="duckdb") and "source." not in query.sql(dialect="duckdb")
    db.execute("CREATE TEMP TABLE coupons_v AS SELECT source_line, channel, "
               "CASE source_line WHEN 1 THEN 'web' WHEN 2 THEN '5' WHEN 3 THEN '7' END AS \"_source_coupon\" "
               "FROM sales_v")
    (got,) = db.execute(query.sql(dialect="duckdb")).fetchone()  # type: ignore[misc]
    assert got == 1  # line 2; line 1's coupon equals its channel, line 3 has no channel, 4-6 no coupon
    assert dataset_passes(rule, got)
    assert "`_source_coupon`" in to_spark(query.sql(dialect="duckdb"))
