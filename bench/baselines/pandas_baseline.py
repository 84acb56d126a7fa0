"""Baseline B: the shipped configuration's work as an idiomatic, hand-rolled pandas pipeline.

Same inputs, rules and outputs as ``duckdb_baseline.py`` (validated lines, quarantined rows,
enriched lines and the four marts as Parquet partitioned by sale_date), written the way such
scripts usually are: ``read_csv(dtype=str, on_bad_lines='skip')``, ``to_datetime``,
``to_numeric(errors='coerce')``, boolean masks, ``drop_duplicates``, ``merge``, ``groupby``,
``to_parquet``. Money is float64, as in most pandas code; totals are compared to the cent.

One step is not the textbook one, because the textbook version gets the numbers wrong on this
data: ``read_csv`` lets an unterminated quote swallow the following lines, pads a line with too
few fields with NaN (a line missing its currency field then passes as valid), and stops at the
first byte that is not UTF-8. So lines are screened first, in plain Python: a line that is not
UTF-8, has an odd number of quotes or not 12 fields is quarantined before ``read_csv``.

Prints one JSON object with the counts and totals that ``bench/run.py`` checks.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

SALES_COLUMNS = ["receipt_id", "line_no", "sold_at", "store", "sku", "customer_id", "qty", "unit_price",
                 "discount", "currency", "channel", "payment_method"]
PAYMENTS = ["card", "cash", "mobile", "voucher"]
CHANNELS = ["store", "web", "mobile"]


def screen_lines(path: Path) -> tuple[bytes, list[bytes]]:
    """(CSV text of the well-formed lines with the header, the malformed lines)."""
    header, *lines = path.read_bytes().split(b"\n")
    good, bad = [header], []
    for line in lines:
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            bad.append(line)
            continue
        if '"' in text:
            ok = text.count('"') % 2 == 0 and len(next(csv.reader([text]))) == len(SALES_COLUMNS)
        else:
            ok = text.count(",") == len(SALES_COLUMNS) - 1
        (good if ok else bad).append(line)
    return b"\n".join(good), bad


def clean_text(s: pd.Series) -> pd.Series:
    s = s.str.strip()
    return s.mask(s == "")


def load_products(path: Path) -> pd.DataFrame:
    """The product master after its rules (complete, unique, prices parse, list_price >= 0)."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    p = pd.DataFrame({
        "product_id": clean_text(raw["sku"]).str.upper(),
        "product_name": clean_text(raw["name"]), "category": clean_text(raw["category"]),
        "subcategory": clean_text(raw["subcategory"]), "brand": clean_text(raw["brand"]),
        "unit_cost": pd.to_numeric(raw["unit_cost"].str.strip(), errors="coerce"),
        "list_price": pd.to_numeric(raw["list_price"].str.strip(), errors="coerce"),
    })
    ok = p["product_id"].notna() & ~(p["list_price"] < 0)
    ok &= ~(p["unit_cost"].isna() & (raw["unit_cost"].str.strip() != ""))
    ok &= ~(p["list_price"].isna() & (raw["list_price"].str.strip() != ""))
    return p[ok].drop_duplicates("product_id")


def check_sales(raw: pd.DataFrame, products: pd.DataFrame) -> pd.DataFrame:
    """Canonical columns plus ``failed_rules`` (a ';'-joined string, empty for a valid line)."""
    payment = clean_text(raw["payment_method"]).str.lower().replace({"credit card": "card", "debit": "card"})
    df = pd.DataFrame({
        "transaction_id": clean_text(raw["receipt_id"]),
        "line_number": pd.to_numeric(raw["line_no"].str.strip(), errors="coerce"),
        "sold_at": pd.to_datetime(raw["sold_at"].str.strip(), format="%Y-%m-%d %H:%M:%S", errors="coerce"),
        "store_id": clean_text(raw["store"]).str.upper(),
        "product_id": clean_text(raw["sku"]).str.upper(),
        "customer_id": clean_text(raw["customer_id"]),
        "quantity": pd.to_numeric(raw["qty"].str.strip(), errors="coerce"),
        "unit_price": pd.to_numeric(raw["unit_price"].str.strip(), errors="coerce"),
        "discount_amount": pd.to_numeric(raw["discount"].str.strip(), errors="coerce"),
        "currency": clean_text(raw["currency"]).str.upper(),
        "channel": clean_text(raw["channel"]).str.lower(),
        "payment_method": payment,
    })
    df["sale_date"] = df["sold_at"].dt.date
    df["net_amount"] = (df["quantity"] * df["unit_price"] - df["discount_amount"]).round(2)

    def present(col: str) -> pd.Series:
        return raw[col].str.strip() != ""

    checks = {
        "Parse.line_number": present("line_no") & df["line_number"].isna(),
        "Parse.sold_at": present("sold_at") & df["sold_at"].isna(),
        "Parse.quantity": present("qty") & df["quantity"].isna(),
        "Parse.unit_price": present("unit_price") & df["unit_price"].isna(),
        "Parse.discount_amount": present("discount") & df["discount_amount"].isna(),
        "Required.sale_date": df["sold_at"].isna(),
        "IsComplete.transaction_id": df["transaction_id"].isna(),
        "IsComplete.product_id": df["product_id"].isna(),
        "IsComplete.store_id": df["store_id"].isna(),
        "IsComplete.quantity": df["quantity"].isna(),
        "IsComplete.unit_price": df["unit_price"].isna(),
        "ColumnValues.quantity": df["quantity"] == 0,
        "ColumnValues.unit_price": df["unit_price"] < 0,
        "ColumnValues.sale_date": df["sold_at"] > pd.Timestamp.now().normalize() + pd.Timedelta(days=1),
        "ColumnValues.payment_method": df["payment_method"].notna() & ~df["payment_method"].isin(PAYMENTS),
        "ColumnValues.channel": df["channel"].notna() & ~df["channel"].isin(CHANNELS),
        "ReferentialIntegrity.product_id": df["product_id"].notna() & ~df["product_id"].isin(products["product_id"]),
    }
    failed = pd.Series("", index=df.index)
    for rule, mask in checks.items():
        failed = failed.where(~mask, failed + rule + ";")
    df["failed_rules"] = failed
    df["line_number"] = df["line_number"].astype("Int64")
    return df


def enrich(valid: pd.DataFrame, products: pd.DataFrame) -> pd.DataFrame:
    """The first valid line of each key, joined with its product, with amounts and date parts."""
    null_key = valid["transaction_id"].isna() | valid["line_number"].isna()
    first = ~valid.duplicated(["transaction_id", "line_number"], keep="first") | null_key
    e = valid[first].merge(products, on="product_id", how="inner")
    e["is_return"] = e["quantity"] < 0
    e["gross_amount"] = (e["net_amount"] + e["discount_amount"]).round(2)
    e["cost_amount"] = (e["quantity"] * e["unit_cost"]).round(2)
    e["margin"] = (e["net_amount"] - e["cost_amount"]).round(2)
    dates = pd.to_datetime(e["sale_date"])
    iso = dates.dt.isocalendar()
    e["year"], e["quarter"], e["month"] = dates.dt.year, dates.dt.quarter, dates.dt.month
    e["iso_year"], e["iso_week"], e["weekday"] = iso["year"], iso["week"], iso["day"]
    return e


def measures(e: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The daily_sales measures of docs/metrics.md per ``keys``."""
    sale = ~e["is_return"]
    e = e.assign(
        units_sold=e["quantity"].where(sale, 0), units_returned=-e["quantity"].where(~sale, 0),
        gross=e["gross_amount"].where(sale, 0), disc=e["discount_amount"].where(sale, 0),
        returned=-e["net_amount"].where(~sale, 0),
    )
    m = e.groupby(keys).agg(
        transactions=("transaction_id", "nunique"), lines=("transaction_id", "size"),
        units_sold=("units_sold", "sum"), units_returned=("units_returned", "sum"),
        gross_revenue=("gross", "sum"), discounts=("disc", "sum"), returns_amount=("returned", "sum"),
        net_revenue=("net_amount", "sum"), cost=("cost_amount", "sum"), margin=("margin", "sum"),
        distinct_customers=("customer_id", "nunique"),
    ).reset_index()
    m["avg_basket_value"] = (m["net_revenue"] / m["transactions"]).round(2)
    return m


def product_daily(e: pd.DataFrame) -> pd.DataFrame:
    m = e.groupby(["sale_date", "product_id"]).agg(
        product_name=("product_name", "first"), category=("category", "first"),
        units=("quantity", "sum"), net_revenue=("net_amount", "sum"), margin=("margin", "sum"),
    ).reset_index()
    m["revenue_rank"] = m.groupby("sale_date")["net_revenue"].rank(method="min", ascending=False).astype(int)
    return m


def write(df: pd.DataFrame, target: Path, partitioned: bool = True) -> None:
    if partitioned:
        df.to_parquet(target, partition_cols=["sale_date"], compression="zstd", index=False)
    else:
        target.mkdir(parents=True)
        df.to_parquet(target / "data_0.parquet", compression="zstd", index=False)


def run(sales: Path, products_path: Path, out: Path) -> dict:
    """Do the work; return the figures ``bench/run.py`` compares with the pipeline's."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    products = load_products(products_path)
    text, malformed = screen_lines(sales)
    raw = pd.read_csv(io.BytesIO(text), dtype=str, keep_default_na=False, on_bad_lines="skip")
    del text
    checked = check_sales(raw, products)
    bad = checked["failed_rules"] != ""
    quarantine = pd.concat([
        raw[bad].assign(failed_rules=checked.loc[bad, "failed_rules"], sale_date=checked.loc[bad, "sale_date"]),
        pd.DataFrame({"raw_line": [b.decode("utf-8", "replace") for b in malformed],
                      "failed_rules": "Read.malformed;"}),
    ])
    valid = checked[~bad].drop(columns="failed_rules")
    del raw, checked
    enriched = enrich(valid, products)
    write(valid, out / "sales_validated")
    write(quarantine, out / "sales_quarantine", partitioned=False)
    write(enriched, out / "sales_enriched")
    write(measures(enriched, ["sale_date"]), out / "daily_sales")
    write(measures(enriched, ["sale_date", "category"]), out / "category_daily")
    write(measures(enriched, ["sale_date", "store_id"]), out / "store_daily")
    write(product_daily(enriched), out / "product_daily")
    return {
        "rows_read": len(valid) + len(quarantine), "rows_valid": len(valid), "enriched": len(enriched),
        "net_revenue": f"{np.round(enriched['net_amount'].sum(), 2):.2f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sales", type=Path, required=True)
    parser.add_argument("--products", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="output folder (replaced)")
    args = parser.parse_args()
    started = time.perf_counter()
    figures = run(args.sales, args.products, args.out)
    print(json.dumps({**figures, "seconds": round(time.perf_counter() - started, 3)}))


if __name__ == "__main__":
    main()
