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


# -- the superstore-style golden case (tests/golden/cases/superstore) ---------------------------------

SCALE4 = Decimal("0.0001")
REGIONS = {"East", "West", "South", "Central"}


def superstore_lines(path: Path) -> list[dict]:
    """Enriched lines of the superstore-style extract, per docs/metrics.md: amounts read at 4 places,
    the discount from the rate on the paid amount (net × rate / (1 − rate), rounded to 4 places), cost =
    net − profit, NULL without a profit; product attributes from the line (there is no master); a line
    whose region is not one of the four is quarantined (the case's ColumnValues rule)."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for r in rows:
        if r["Region"] not in REGIONS:
            continue
        net = Decimal(r["Sales"]).quantize(SCALE4, rounding=ROUND_HALF_UP)
        rate = Decimal(r["Discount"] or "0")
        discount = (net * rate / (1 - rate)).quantize(SCALE4, rounding=ROUND_HALF_UP)
        margin = Decimal(r["Profit"]) if r["Profit"].strip() else None
        out.append({
            "transaction_id": r["Order ID"], "sale_date": dt.datetime.strptime(r["Order Date"], "%m/%d/%Y").date(),
            "product_id": r["Product ID"], "category": r["Category"], "customer_id": r["Customer ID"],
            "region": r["Region"], "quantity": Decimal(r["Quantity"]), "net_amount": net,
            "discount_amount": discount, "gross_amount": net + discount, "margin": margin,
            "cost_amount": None if margin is None else net - margin, "is_return": False,
        })
    return out


def marts(lines: list[dict], grain: tuple[str, ...], scale: Decimal = SCALE4) -> dict[tuple, dict]:
    """The measures of daily_sales (grain ``("sale_date",)``), category_daily, store_daily… as
    docs/metrics.md defines them: exact sums, cost and margin over the lines that have them (None when
    none has), avg_basket_value rounded half away from zero to ``scale``."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for ln in lines:
        groups[tuple(ln[g] for g in grain)].append(ln)
    out = {}
    for key, group in groups.items():
        sales = [ln for ln in group if not ln["is_return"]]
        returns = [ln for ln in group if ln["is_return"]]
        costs = [ln["cost_amount"] for ln in group if ln["cost_amount"] is not None]
        margins = [ln["margin"] for ln in group if ln["margin"] is not None]
        net = sum((ln["net_amount"] for ln in group), Decimal(0))
        txns = len({ln["transaction_id"] for ln in group})
        out[key] = {
            "transactions": txns, "lines": len(group),
            "units_sold": sum((ln["quantity"] for ln in sales), Decimal(0)),
            "units_returned": -sum((ln["quantity"] for ln in returns), Decimal(0)),
            "gross_revenue": sum((ln["gross_amount"] for ln in sales), Decimal(0)),
            "discounts": sum((ln["discount_amount"] for ln in sales), Decimal(0)),
            "returns_amount": -sum((ln["net_amount"] for ln in returns), Decimal(0)),
            "net_revenue": net,
            "cost": sum(costs, Decimal(0)) if costs else None,
            "margin": sum(margins, Decimal(0)) if margins else None,
            "lines_without_cost": len(group) - len(costs),
            "distinct_customers": len({ln["customer_id"] for ln in group if ln["customer_id"]}),
            "avg_basket_value": (net / txns).quantize(scale, rounding=ROUND_HALF_UP),
        }
    return out
