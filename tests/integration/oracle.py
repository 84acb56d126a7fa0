"""An independent model of what the pipeline must produce from the scaffold configuration.

Written from the documented rules (README, docs/metrics.md, the scaffold's retail-etl.yaml) with the
standard library only: it never calls pipeline code. Used to check the pipeline's figures.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path

SALES_COLUMNS = ["receipt_id", "line_no", "sold_at", "store", "sku", "customer_id", "qty", "unit_price",
                 "discount", "currency", "channel", "payment_method"]
PAYMENT_MAP = {"credit card": "card", "debit": "card"}
PAYMENTS = {"card", "cash", "mobile", "voucher"}
CHANNELS = {"store", "web", "mobile"}
CENT = Decimal("0.01")


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def load_products(path: Path) -> dict[str, dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return {row["sku"].strip().upper(): row for row in csv.DictReader(fh)}


def _num(text: str, places: str) -> Decimal | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value.quantize(Decimal(places), rounding=ROUND_HALF_UP) if value.is_finite() else None


def sales_lines(files: list[Path], products: dict[str, dict], today: dt.date) -> tuple[list[dict], int]:
    """(enriched lines, data lines read) for ``files`` processed in file-name order."""
    out: list[dict] = []
    seen: set[tuple] = set()
    read = 0
    for path in sorted(files, key=lambda p: p.name):
        raw_lines = path.read_bytes().split(b"\n")
        for raw in raw_lines[1:]:
            if not raw.strip():
                continue
            read += 1
            row = _parse(raw, products, today)
            if row is None:
                continue
            key = (row["transaction_id"], row["line_number"])
            if key in seen:
                continue
            seen.add(key)
            out.append(row)
    return out, read


def _parse(raw: bytes, products: dict[str, dict], today: dt.date) -> dict | None:
    try:
        text = raw.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError:
        return None
    if text.count('"') % 2:
        return None  # unterminated quote
    fields = next(csv.reader([text]))
    if len(fields) != len(SALES_COLUMNS):
        return None
    r = dict(zip(SALES_COLUMNS, fields, strict=True))
    try:
        sold = dt.datetime.strptime(r["sold_at"].strip(), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    qty = _num(r["qty"], "0.001")
    price = _num(r["unit_price"], "0.0001")
    discount = _num(r["discount"], "0.01") if r["discount"].strip() else Decimal("0.00")
    line = r["line_no"].strip()
    if qty is None or price is None or discount is None or (line and not line.lstrip("-").isdigit()):
        return None
    sku, store, txn = r["sku"].strip().upper(), r["store"].strip().upper(), r["receipt_id"].strip()
    payment = r["payment_method"].strip().lower()
    payment = PAYMENT_MAP.get(payment, payment)
    channel = r["channel"].strip().lower()
    if not (sku and store and txn) or qty == 0 or price < 0 or sold.date() > today:
        return None
    if (payment and payment not in PAYMENTS) or (channel and channel not in CHANNELS) or sku not in products:
        return None
    product = products[sku]
    unit_cost = Decimal(product["unit_cost"])
    net = cents(qty * price - discount)
    cost = cents(qty * unit_cost)
    return {
        "transaction_id": txn, "line_number": int(line) if line else None, "sale_date": sold.date(),
        "store_id": store, "product_id": sku, "customer_id": r["customer_id"].strip() or None,
        "quantity": qty, "discount_amount": discount, "net_amount": net, "is_return": qty < 0,
        "category": product["category"], "product_name": product["name"], "cost_amount": cost,
        "margin": net - cost, "gross_amount": net + discount,
    }


def daily(lines: list[dict]) -> dict[dt.date, dict]:
    """``daily_sales`` as documented in docs/metrics.md."""
    days: dict[dt.date, dict] = defaultdict(lambda: {
        "txns": set(), "customers": set(), "lines": 0, "units_sold": Decimal(0), "units_returned": Decimal(0),
        "gross_revenue": Decimal(0), "discounts": Decimal(0), "returns_amount": Decimal(0),
        "net_revenue": Decimal(0), "cost": Decimal(0), "margin": Decimal(0),
    })
    for ln in lines:
        d = days[ln["sale_date"]]
        d["txns"].add(ln["transaction_id"])
        if ln["customer_id"]:
            d["customers"].add(ln["customer_id"])
        d["lines"] += 1
        if ln["is_return"]:
            d["units_returned"] -= ln["quantity"]
            d["returns_amount"] -= ln["net_amount"]
        else:
            d["units_sold"] += ln["quantity"]
            d["gross_revenue"] += ln["gross_amount"]
            d["discounts"] += ln["discount_amount"]
        d["net_revenue"] += ln["net_amount"]
        d["cost"] += ln["cost_amount"]
        d["margin"] += ln["margin"]
    out = {}
    for day, d in days.items():
        txns = len(d.pop("txns"))
        customers = len(d.pop("customers"))
        out[day] = {
            **d, "transactions": txns, "distinct_customers": customers,
            "avg_basket_value": cents(d["net_revenue"] / txns),
        }
    return out
