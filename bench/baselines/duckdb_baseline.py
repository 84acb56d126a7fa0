"""Baseline A: the shipped configuration's work as one hand-written DuckDB script.

What the pipeline does for ``retail-etl.yaml`` (see ``src/retail_etl/scaffold/retail-etl.yaml``
and ``docs/metrics.md``), written as directly as DuckDB allows, with no catalog, raw zone,
lineage or bookkeeping: read every field as text, reject lines that are not a 12-field
record, parse, apply the quality rules, keep the first line of each (receipt_id, line_no),
join the products, and write Parquet: validated lines, quarantined rows, enriched lines
and the four marts (partitioned by sale_date, zstd, like the pipeline's tables).

Why lines are split in SQL rather than by ``read_csv``: the sample data has lines with an
unterminated quote, and DuckDB's CSV reader then swallows the following lines into one
field (``ignore_errors`` loses thousands of good lines). So the file is read as lines, a
line with an odd number of quotes is rejected, and the rest are split on commas (a
regular expression for the rare lines holding a quoted field). Lines that are not valid
UTF-8 are rejected by the line reader.

Prints one JSON object with the counts and totals that ``bench/run.py`` checks.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import duckdb

SALES_COLUMNS = ("receipt_id", "line_no", "sold_at", "store", "sku", "customer_id", "qty", "unit_price",
                 "discount", "currency", "channel", "payment_method")
# A field: quoted (with "" inside) or plain, after the start of the line or a comma.
FIELD_RE = r'(?:^|,)("(?:[^"]|"")*"|[^,"]*)'

MEASURES = """
    count(DISTINCT transaction_id) AS transactions, count(*) AS lines,
    coalesce(sum(quantity) FILTER (WHERE NOT is_return), 0) AS units_sold,
    coalesce(-sum(quantity) FILTER (WHERE is_return), 0) AS units_returned,
    coalesce(sum(gross_amount) FILTER (WHERE NOT is_return), 0) AS gross_revenue,
    coalesce(sum(discount_amount) FILTER (WHERE NOT is_return), 0) AS discounts,
    coalesce(-sum(net_amount) FILTER (WHERE is_return), 0) AS returns_amount,
    coalesce(sum(net_amount), 0) AS net_revenue, coalesce(sum(cost_amount), 0) AS cost,
    coalesce(sum(margin), 0) AS margin, count(DISTINCT customer_id) AS distinct_customers,
    CAST(round(coalesce(sum(net_amount), 0) / count(DISTINCT transaction_id), 2) AS DECIMAL(18, 2))
        AS avg_basket_value
"""
MARTS = {
    "daily_sales": f"SELECT sale_date, {MEASURES} FROM enriched GROUP BY sale_date",
    "category_daily": f"SELECT sale_date, category, {MEASURES} FROM enriched GROUP BY ALL",
    "store_daily": f"SELECT sale_date, store_id, {MEASURES} FROM enriched GROUP BY ALL",
    "product_daily": """
        SELECT *, rank() OVER (PARTITION BY sale_date ORDER BY net_revenue DESC) AS revenue_rank
        FROM (SELECT sale_date, product_id, any_value(product_name) AS product_name,
                     any_value(category) AS category, sum(quantity) AS units,
                     sum(net_amount) AS net_revenue, sum(margin) AS margin
              FROM enriched GROUP BY sale_date, product_id)""",
}


def text(field: str) -> str:
    """A text column: trimmed, empty as NULL."""
    return f"nullif(trim({field}), '')"


def present(field: str) -> str:
    """The raw field holds a value (what a parse check needs before it can fail)."""
    return f"({field} IS NOT NULL AND trim({field}) <> '')"


def load_products(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """``products``: the product master after its rules (complete, unique, list_price >= 0)."""
    con.execute(f"""
        CREATE TABLE products AS
        SELECT * EXCLUDE (line_id, cost_text, price_text) FROM (
            SELECT row_number() OVER () AS line_id, unit_cost AS cost_text, list_price AS price_text,
                   upper({text('sku')}) AS product_id, {text('name')} AS product_name,
                   {text('category')} AS category, {text('subcategory')} AS subcategory, {text('brand')} AS brand,
                   TRY_CAST(trim(unit_cost) AS DECIMAL(18, 4)) AS unit_cost,
                   TRY_CAST(trim(list_price) AS DECIMAL(18, 4)) AS list_price
            FROM read_csv('{path}', all_varchar = true, header = true))
        WHERE product_id IS NOT NULL AND coalesce(list_price >= 0, true)
          AND NOT ({present('cost_text')} AND unit_cost IS NULL)
          AND NOT ({present('price_text')} AND list_price IS NULL)
        QUALIFY row_number() OVER (PARTITION BY product_id ORDER BY line_id) = 1
    """)


def load_sales(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """``lines``: the file's text lines in file order (``rowid``); lines not valid UTF-8 go to ``bad_utf8``."""
    con.execute(f"""
        CREATE TABLE lines AS
        SELECT line FROM read_csv('{path}', columns = {{'line': 'VARCHAR'}}, delim = '\x1f', quote = '', escape = '',
                                  header = true, auto_detect = false, strict_mode = true, ignore_errors = true,
                                  store_rejects = true, rejects_table = 'bad_utf8')
    """)


def check_sales(con: duckdb.DuckDBPyConnection) -> None:
    """``checked``: every line as canonical columns plus the rules it fails (``Read.malformed``: not 12 fields)."""
    fields = f"""CASE WHEN (length(line) - length(replace(line, '"', ''))) % 2 = 1 THEN NULL
                      WHEN contains(line, '"') THEN list_transform(regexp_extract_all(line, '{FIELD_RE}', 1),
                           lambda x: CASE WHEN starts_with(x, '"') THEN replace(x[2:-2], '""', '"') ELSE x END)
                      ELSE string_split(line, ',') END"""
    raw = ", ".join(f"f[{i + 1}] AS {name}" for i, name in enumerate(SALES_COLUMNS))
    payment = f"lower({text('payment_method')})"
    canonical = f"""
        SELECT line_id, line, len(f) IS DISTINCT FROM 12 AS malformed, line_no, sold_at AS sold_at_text, qty,
               unit_price AS unit_price_text, discount,
               {{{", ".join(f"'{c}': {c}" for c in SALES_COLUMNS)}}} AS raw,
               {text('receipt_id')} AS transaction_id,
               TRY_CAST(trim(line_no) AS INTEGER) AS line_number,
               TRY_STRPTIME(trim(sold_at), '%Y-%m-%d %H:%M:%S') AS sold_at,
               upper({text('store')}) AS store_id, upper({text('sku')}) AS product_id,
               {text('customer_id')} AS customer_id,
               TRY_CAST(trim(qty) AS DECIMAL(18, 3)) AS quantity,
               TRY_CAST(trim(unit_price) AS DECIMAL(18, 4)) AS unit_price,
               TRY_CAST(trim(discount) AS DECIMAL(18, 2)) AS discount_amount,
               upper({text('currency')}) AS currency, lower({text('channel')}) AS channel,
               CASE {payment} WHEN 'credit card' THEN 'card' WHEN 'debit' THEN 'card' ELSE {payment} END
                   AS payment_method
        FROM (SELECT line_id, line, f, {raw} FROM (SELECT rowid AS line_id, line, {fields} AS f FROM lines))
    """
    known = "SELECT product_id, true AS known_product FROM products"
    checks = {
        "Parse.line_number": f"{present('line_no')} AND line_number IS NULL",
        "Parse.sold_at": f"{present('sold_at_text')} AND sold_at IS NULL",
        "Parse.quantity": f"{present('qty')} AND quantity IS NULL",
        "Parse.unit_price": f"{present('unit_price_text')} AND unit_price IS NULL",
        "Parse.discount_amount": f"{present('discount')} AND discount_amount IS NULL",
        "Required.sale_date": "sold_at IS NULL",
        "IsComplete.transaction_id": "transaction_id IS NULL",
        "IsComplete.product_id": "product_id IS NULL",
        "IsComplete.store_id": "store_id IS NULL",
        "IsComplete.quantity": "quantity IS NULL",
        "IsComplete.unit_price": "unit_price IS NULL",
        "ColumnValues.quantity": "quantity = 0",
        "ColumnValues.unit_price": "unit_price < 0",
        "ColumnValues.sale_date": "CAST(sold_at AS DATE) > current_date",
        "ColumnValues.payment_method": "payment_method NOT IN ('card', 'cash', 'mobile', 'voucher')",
        "ColumnValues.channel": "channel NOT IN ('store', 'web', 'mobile')",
        "ReferentialIntegrity.product_id": "product_id IS NOT NULL AND known_product IS NULL",
    }
    any_failed = " OR ".join(f"coalesce({cond}, false)" for cond in checks.values())
    failed = ", ".join(f"CASE WHEN coalesce({cond}, false) THEN '{rule}' END" for rule, cond in checks.items())
    # The rule list and the original record are only built for the few rows that fail.
    con.execute(f"""
        CREATE TABLE checked AS
        SELECT line_id, transaction_id, line_number, sold_at, CAST(sold_at AS DATE) AS sale_date, store_id,
               product_id, customer_id, quantity, unit_price, discount_amount,
               CAST(quantity * unit_price - discount_amount AS DECIMAL(18, 2)) AS net_amount,
               currency, channel, payment_method, NOT malformed AND NOT ({any_failed}) AS valid,
               CASE WHEN malformed THEN ['Read.malformed']
                    WHEN {any_failed} THEN list_filter([{failed}], lambda x: x IS NOT NULL) END AS failed_rules,
               CASE WHEN {any_failed} AND NOT malformed THEN raw::VARCHAR END AS record,
               CASE WHEN malformed THEN line END AS raw_line
        FROM ({canonical}) LEFT JOIN ({known}) USING (product_id)
    """)
    con.execute("DROP TABLE lines")


def enrich(con: duckdb.DuckDBPyConnection) -> None:
    """``enriched``: the first valid line of each key, joined with its product, with amounts and date parts."""
    con.execute("""
        CREATE TABLE enriched AS
        SELECT v.* EXCLUDE (line_id, valid, failed_rules, record, raw_line), quantity < 0 AS is_return,
               p.product_name, p.category, p.subcategory, p.brand, p.unit_cost, p.list_price,
               CAST(net_amount + discount_amount AS DECIMAL(18, 2)) AS gross_amount,
               CAST(round(quantity * p.unit_cost, 2) AS DECIMAL(18, 2)) AS cost_amount,
               CAST(net_amount - round(quantity * p.unit_cost, 2) AS DECIMAL(18, 2)) AS margin,
               year(sale_date) AS year, quarter(sale_date) AS quarter, month(sale_date) AS month,
               isoyear(sale_date) AS iso_year, weekofyear(sale_date) AS iso_week, isodow(sale_date) AS weekday
        FROM checked v JOIN products p USING (product_id)
        WHERE valid AND (transaction_id IS NULL OR line_number IS NULL OR line_id IN (
            SELECT min(line_id) FROM checked WHERE valid GROUP BY transaction_id, line_number))
    """)


def write(con: duckdb.DuckDBPyConnection, query: str, target: Path, partitioned: bool = True) -> None:
    options = "FORMAT parquet, COMPRESSION zstd"
    if partitioned:
        options += ", PARTITION_BY (sale_date), WRITE_PARTITION_COLUMNS true"
    else:
        target.mkdir(parents=True)
        target = target / "data_0.parquet"
    con.execute(f"COPY ({query}) TO '{target}' ({options})")


def run(sales: Path, products: Path, out: Path, memory_limit: str, threads: int | None,
        flush_threshold: int | None = None) -> dict:
    """Do the work; return the figures ``bench/run.py`` compares with the pipeline's."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{memory_limit}'")
    if flush_threshold:  # the pipeline's partitioned-write settings (see engines/duckdb.connect)
        con.execute(f"SET partitioned_write_flush_threshold = {flush_threshold}")
        con.execute("SET partitioned_write_max_open_files = 400")
    con.execute(f"SET temp_directory = '{out / '_spill'}'")
    con.execute("SET enable_progress_bar = false")
    if threads:
        con.execute(f"SET threads = {threads}")
    load_products(con, products)
    load_sales(con, sales)
    con.execute("SET preserve_insertion_order = false")  # from here on, line order is the line_id column
    check_sales(con)
    enrich(con)
    write(con, "SELECT * EXCLUDE (line_id, valid, failed_rules, record, raw_line) FROM checked WHERE valid",
          out / "sales_validated")
    write(con, "SELECT line_id, sale_date, failed_rules, record, raw_line FROM checked WHERE NOT valid "
               "UNION ALL SELECT NULL, NULL, ['Read.malformed'], NULL, csv_line FROM bad_utf8",
          out / "sales_quarantine", partitioned=False)
    write(con, "SELECT * FROM enriched", out / "sales_enriched")
    for name, query in MARTS.items():
        write(con, query, out / name)
    read, valid, enriched, net = con.execute("""
        SELECT (SELECT count(*) FROM checked) + (SELECT count(*) FROM bad_utf8),
               (SELECT count(*) FROM checked WHERE valid),
               count(*), sum(net_amount)
        FROM enriched
    """).fetchall()[0]
    con.close()
    shutil.rmtree(out / "_spill", ignore_errors=True)
    return {"rows_read": read, "rows_valid": valid, "enriched": enriched, "net_revenue": str(net)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sales", type=Path, required=True)
    parser.add_argument("--products", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="output folder (replaced)")
    parser.add_argument("--memory-limit", default="2GB",
                        help="DuckDB's memory limit (the pipeline's shipped engine.memory_limit is 1.5GB)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--flush-threshold", type=int, default=None,
                        help="partitioned_write_flush_threshold (default: DuckDB's); 8192 is the pipeline's")
    args = parser.parse_args()
    started = time.perf_counter()
    figures = run(args.sales, args.products, args.out, args.memory_limit, args.threads, args.flush_threshold)
    print(json.dumps({**figures, "seconds": round(time.perf_counter() - started, 3)}))


if __name__ == "__main__":
    main()
