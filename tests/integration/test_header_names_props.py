"""Any header and column name, mapped in the configuration, is only a name.

The same small project runs once with plain header names and again with names drawn by
hypothesis (quotes, backslashes, unicode, SQL fragments, DuckDB's pseudo-column names); every
table it commits must hold the same rows. Source names appear inside the quarantine's
original records and parse messages, so those are compared with the names mapped back.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from retail_etl.config.loader import load_config
from retail_etl.pipeline import run
from retail_etl.query import run_query

PRODUCT_COLUMNS = {"product_id": "sku", "product_name": "title", "category": "cat", "list_price": "price"}
SALES_COLUMNS = {
    "transaction_id": "receipt",
    "line_number": "pos",
    "store_id": "shop",
    "product_id": "sku",
    "quantity": "qty",
    "unit_price": "price",
    "payment_method": "pay",
}
SOLD_AT = "sold"
PRODUCTS = [("P1", "Pen", "Office", "1.50"), ("P2", "Ink", "Office", "4.00"), ("P3", "Pad", "Paper", "2.25")]
SALES = [
    ("T1", "1", "2024-01-02 10:00:00", "S1", "p1", "2", "1.50", "card"),
    ("T1", "2", "2024-01-02 10:00:00", "S1", "P3", "1", "2.25", "Credit Card"),
    ("T2", "1", "2024-01-02 11:00:00", "S1", "P2", "1", "x", "cash"),  # not a number
    ("T3", "1", "2024-01-03 09:00:00", "S2", "P9", "1", "2.00", "card"),  # unknown product
    ("T4", "1", "2024-01-03 09:30:00", "S2", "P1", "0", "1.50", "card"),  # quantity 0
    ("T5", "1", "2024-01-03 10:00:00", "S2", "P1", "1", "1.50", "card", "extra"),  # unreadable
    ("T1", "1", "2024-01-02 10:00:00", "S1", "P1", "2", "1.50", "card"),  # duplicate key
    ("T6", "1", "2024-01-04 12:00:00", "S1", "P2", "3", "4.00", "debit"),
]
TABLES = ("products", "sales_validated", "sales_quarantine", "sales_enriched", "daily_sales", "product_daily",
          "category_daily", "store_daily", "quality_runs")
# delivery_id derives from the file's sha256, which the header names change.
VOLATILE = {"run_id", "quarantined_at", "measured_at", "seconds", "delivery_id"}
PLAIN = {**{f"products.{k}": v for k, v in PRODUCT_COLUMNS.items()},
         **{f"sales.{k}": v for k, v in SALES_COLUMNS.items()}, "sales.sold_at": SOLD_AT}

FRAGMENTS = st.sampled_from([
    '"', "'", "\\", "`", "--", ";", "/*", "*/", "''", '""', "\\'", " || '-INJECTED-' || ", "?", "$1", "%s", "{}",
    "é", "日本", "😀", "\u200b", " ", "\t", "rowid", "sku", "_field_0", "_parse_0", "source_file", "quantity",
    "select", "NULL", ")", "(", ",", ".",
])
TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=6)
NAME = st.lists(st.one_of(FRAGMENTS, TEXT), min_size=1, max_size=4).map("".join).filter(
    lambda n: n == n.strip() and n != "" and not n.startswith("\ufeff")
)


LINEAGE = {"_source_file", "_source_line"}


def _names(n: int) -> st.SearchStrategy[list[str]]:
    """``n`` names a header allows: unique ignoring case, none of the lineage names."""
    return st.lists(NAME.filter(lambda x: x.casefold() not in LINEAGE), min_size=n, max_size=n, unique_by=str.casefold)


NAMES = st.tuples(_names(len(PRODUCT_COLUMNS)), _names(len(SALES_COLUMNS) + 1)).map(lambda t: [*t[0], *t[1]])


def _csv(header: list[str], rows: list[tuple[str, ...]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _project(root: Path, names: dict[str, str]) -> Path:
    """The project with header names ``names`` (``<source>.<canonical column>`` -> header name)."""
    root.mkdir(parents=True)
    (root / "data").mkdir()
    products = {k: names[f"products.{k}"] for k in PRODUCT_COLUMNS}
    sales = {k: names[f"sales.{k}"] for k in SALES_COLUMNS}
    sold_at = names["sales.sold_at"]
    (root / "data" / "products.csv").write_text(_csv(list(products.values()), PRODUCTS), encoding="utf-8")
    sales_header = [sales["transaction_id"], sales["line_number"], sold_at,
                    *(sales[k] for k in ("store_id", "product_id", "quantity", "unit_price", "payment_method"))]
    (root / "data" / "sales.csv").write_text(_csv(sales_header, SALES), encoding="utf-8")
    config = {
        "lake": {"root": "lake"},
        "sources": {
            "products": {"entity": "products", "path": "data/products.csv", "columns": products,
                         "standardize": {"product_id": {"case": "upper"}}, "key": ["product_id"]},
            "sales": {
                "entity": "sales",
                "path": "data/sales.csv",
                "columns": {**sales, "sold_at": {"column": sold_at, "format": "%Y-%m-%d %H:%M:%S"}},
                "defaults": {"currency": "EUR", "channel": "store"},
                "standardize": {"product_id": {"case": "upper"},
                                "payment_method": {"case": "lower", "values": {"credit card": "card", "debit": "card"}}},
                "key": ["transaction_id", "line_number"],
                "rules": ["IsComplete \"product_id\"", "ColumnValues \"quantity\" != 0",
                          "ReferentialIntegrity \"product_id\" \"products.product_id\" = 1.0"],
                "thresholds": {"quarantine_rate": {"warn": 0.9, "fail": 1.0}},
            },
        },
        "workflow": {"circuit": {"enabled": False}},
        "notifications": {"channels": []},
    }
    (root / "retail-etl.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return root


def _tables(project: Path, names: dict[str, str]) -> dict[str, list[tuple]]:
    """Every table's rows, sorted, volatile columns left out, source names mapped back to plain ones."""
    back = {names[k]: PLAIN[k] for k in PLAIN}
    config = load_config(project / "retail-etl.yaml", env={})
    out = {}
    for table in TABLES:
        rows = []
        for row in run_query(config, f"SELECT * FROM retail_etl.{table}").to_pylist():
            if row.get("record") is not None:
                row["record"] = {back[k]: v for k, v in json.loads(row["record"]).items()}
            if row.get("messages") is not None:
                row["messages"] = [_plain_message(m, back) for m in row["messages"]]
            rows.append(tuple(sorted((k, repr(v)) for k, v in row.items() if k not in VOLATILE)))
        out[table] = sorted(rows)
    return out


def _plain_message(message: str, back: dict[str, str]) -> str:
    m = re.search(r" \(source column (.*)\)$", message, flags=re.DOTALL)
    if m is None:
        return message
    return message[: m.start(1)] + back[m.group(1)] + ")"


#: The header injection of the issue (a name that is SQL over another column) and its kin.
ODD_NAMES = [
    *('sku" || \'-INJECTED-\' || "sku', "sku", "it's", "back\\slash"),
    *('lone"quote', "pos -- comment", "shop; DROP TABLE x", "rowid", "qty */", "price /*", "naïve 日本 😀", "`sold`"),
]

_BASELINE: dict[str, list[tuple]] = {}


def _baseline(tmp: Path) -> dict[str, list[tuple]]:
    if not _BASELINE:
        project = _project(tmp / "plain", PLAIN)
        run(load_config(project / "retail-etl.yaml", env={}))
        _BASELINE.update(_tables(project, PLAIN))
        assert len(_BASELINE["sales_validated"]) == 4 and len(_BASELINE["sales_quarantine"]) == 5
        assert len(_BASELINE["sales_enriched"]) == 3
    return _BASELINE


_runs = iter(range(10**6))


@settings(max_examples=20, deadline=None)
@example(names=ODD_NAMES)
@given(names=NAMES)
def test_any_header_names_give_the_tables_of_plain_names(tmp_path_factory, names: list[str]) -> None:
    tmp = tmp_path_factory.getbasetemp()
    baseline = _baseline(tmp)
    mapping = dict(zip(PLAIN, names, strict=True))
    project = _project(tmp / f"odd{next(_runs)}", mapping)
    run(load_config(project / "retail-etl.yaml", env={}))
    assert _tables(project, mapping) == baseline
