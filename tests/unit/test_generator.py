"""Tests for the sample-data generator: format, determinism, receipts, and exact dirt counts."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import re
from collections import Counter
from pathlib import Path

import pytest

from retail_etl.sample import generator
from retail_etl.sample.generator import DirtCounts, GeneratedData, generate

ROWS = 5_000
SALES_HEADER = (
    "receipt_id,line_no,sold_at,store,sku,customer_id,qty,unit_price,discount,currency,channel,payment_method"
)
PRODUCTS_HEADER = "sku,name,category,subcategory,brand,unit_cost,list_price"
STORES = {f"S{i:03d}" for i in range(1, 26)}
CHANNELS = {"store", "web", "mobile"}
PAYMENTS = {"card", "cash", "mobile", "voucher"}
TS_FORMAT = "%Y-%m-%d %H:%M:%S"


@pytest.fixture(scope="module")
def dirty(tmp_path_factory: pytest.TempPathFactory) -> GeneratedData:
    return generate(tmp_path_factory.mktemp("dirty"), ROWS)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> GeneratedData:
    return generate(tmp_path_factory.mktemp("clean"), ROWS, dirty_rate=0)


def data_lines(path: Path) -> list[bytes]:
    """Physical data lines of a generated file, without line ends; checks header and line ends."""
    raw = path.read_bytes()
    assert raw.endswith(b"\n") and b"\r" not in raw
    lines = raw[:-1].split(b"\n")
    assert lines[0].decode() == SALES_HEADER
    return lines[1:]


def products(data: GeneratedData) -> list[dict[str, str]]:
    with open(data.products_path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def classify(raw: bytes, previous: bytes | None, skus: set[str]) -> str | None:
    """The kind of dirt on one sales line, recognised from its bytes alone; None if clean."""
    if raw == previous:
        return "duplicate_line"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "malformed_line"
    if text.count('"') % 2:
        return "malformed_line"
    fields = next(csv.reader([text]))
    if len(fields) != 12:
        return "malformed_line"
    _, _, sold_at, store, sku, _, qty, price, _, _, channel, payment = fields
    if sku == "":
        return "missing_product"
    if sku.strip().upper() not in skus:
        return "unknown_product"
    if qty == "0":
        return "zero_quantity"
    try:
        float(price)
    except ValueError:
        return "bad_price"
    try:
        sold = dt.datetime.strptime(sold_at, TS_FORMAT)
    except ValueError:
        return "bad_date"
    if sold.year == 2099:
        return "future_date"
    if payment.strip().lower() not in PAYMENTS:
        return "unknown_payment"
    normalised = (store.strip().upper(), sku.strip().upper(), channel.strip().lower(), payment.strip().lower())
    if (store, sku, channel, payment) != normalised:
        assert normalised[0] in STORES and normalised[2] in CHANNELS, "messy text must stay valid"
        return "messy_text"
    return None


def recount(data: GeneratedData) -> Counter[str]:
    skus = {p["sku"] for p in products(data)}
    counts: Counter[str] = Counter()
    previous = None
    for raw in data_lines(data.sales_path):
        kind = classify(raw, previous, skus)
        if kind:
            counts[kind] += 1
        previous = raw
    return counts


def as_counter(dirt: DirtCounts) -> Counter[str]:
    return Counter({k: v for k, v in dataclasses.asdict(dirt).items() if v})


def parse_clean(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert ",".join(rows[0]) == SALES_HEADER
    return rows[1:]


# --- format and determinism ---------------------------------------------------------------


def test_row_count_and_headers(dirty: GeneratedData) -> None:
    assert dirty.rows == ROWS
    assert len(data_lines(dirty.sales_path)) == ROWS
    assert dirty.sales_path.name == "sales.csv" and dirty.products_path.name == "products.csv"
    assert dirty.products_path.read_text(encoding="utf-8").split("\n", 1)[0] == PRODUCTS_HEADER


def test_same_arguments_give_same_bytes(tmp_path: Path, dirty: GeneratedData) -> None:
    again = generate(tmp_path / "again", ROWS)
    assert again == dataclasses.replace(dirty, sales_path=again.sales_path, products_path=again.products_path)
    assert again.sales_path.read_bytes() == dirty.sales_path.read_bytes()
    assert again.products_path.read_bytes() == dirty.products_path.read_bytes()

    other = generate(tmp_path / "other", ROWS, seed=7)
    assert other.sales_path.read_bytes() != dirty.sales_path.read_bytes()
    assert other.products_path.read_bytes() != dirty.products_path.read_bytes()


def test_many_chunks_are_deterministic_and_continuous(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generator, "CHUNK_ROWS", 700)
    calls: list[int] = []
    first = generate(tmp_path / "a", ROWS, progress=calls.append)
    assert calls == [*range(700, ROWS, 700), ROWS]
    assert recount(first) == as_counter(first.dirt)

    # The bytes do not depend on how many threads render the chunks.
    monkeypatch.setattr(generator, "_MAX_WORKERS", 1)
    single = generate(tmp_path / "b", ROWS)
    assert single.sales_path.read_bytes() == first.sales_path.read_bytes()

    clean = generate(tmp_path / "c", ROWS, dirty_rate=0)
    check_receipts(parse_clean(clean.sales_path))


def test_zero_rows_writes_headers_only(tmp_path: Path) -> None:
    calls: list[int] = []
    data = generate(tmp_path / "nested" / "dir", 0, progress=calls.append)
    assert data.sales_path.read_text() == SALES_HEADER + "\n"
    assert data.rows == 0 and data.products == 50 and data.dirt.total == 0
    assert calls == []


@pytest.mark.parametrize(
    "kwargs", [{"rows": -1}, {"days": 0}, {"seed": -1}, {"dirty_rate": 0.5}, {"dirty_rate": -0.1}, {"products": 0}]
)
def test_rejects_bad_arguments(tmp_path: Path, kwargs: dict[str, object]) -> None:
    args = {"rows": 10, **kwargs}
    with pytest.raises(ValueError):
        generate(tmp_path, **args)  # type: ignore[arg-type]


# --- products -----------------------------------------------------------------------------


def test_products_file(tmp_path: Path, dirty: GeneratedData) -> None:
    assert dirty.products == len(products(dirty)) == 50  # min(2000, max(50, 5000 // 200))
    data = generate(tmp_path, 10, products=600)
    rows = products(data)
    assert data.products == len(rows) == 600
    assert [r["sku"] for r in rows] == [f"P{i:05d}" for i in range(1, 601)]
    for r in rows:
        assert re.fullmatch(r"\d+\.\d\d", r["list_price"]) and re.fullmatch(r"\d+\.\d\d", r["unit_cost"])
        price, cost = float(r["list_price"]), float(r["unit_cost"])
        assert 0.50 <= price <= 200.00
        assert 0.4 * price - 1e-9 <= cost <= 0.8 * price + 1e-9
        assert r["name"] and r["brand"] and r["subcategory"]
    by_category: dict[str, set[str]] = {}
    for r in rows:
        by_category.setdefault(r["category"], set()).add(r["subcategory"])
    assert len(by_category) >= 8
    assert all(2 <= len(subs) <= 4 for subs in by_category.values())
    assert 20 <= len({r["brand"] for r in rows}) <= 30
    assert any("," in r["name"] for r in rows)
    assert b'"' in data.products_path.read_bytes()  # names with commas are quoted


# --- a clean file -------------------------------------------------------------------------


def test_clean_file_is_clean(clean: GeneratedData) -> None:
    assert clean.dirt == DirtCounts(*[0] * 10)
    prices = {p["sku"]: p["list_price"] for p in products(clean)}
    rows = parse_clean(clean.sales_path)
    assert len(rows) == ROWS
    start, end = dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 31)
    for row in rows:
        assert len(row) == 12
        receipt_id, line_no, sold_at, store, sku, customer, qty, price, discount, currency, channel, payment = row
        assert re.fullmatch(r"R\d{9}", receipt_id) and 1 <= int(line_no) <= 6
        sold = dt.datetime.strptime(sold_at, TS_FORMAT)
        assert start <= sold < end and 7 <= sold.hour < 22
        assert store in STORES and channel in CHANNELS and payment in PAYMENTS and currency == "EUR"
        assert customer == "" or re.fullmatch(r"C\d{6}", customer)
        assert price == prices[sku]
        assert int(qty) != 0 and -5 <= int(qty) <= 5
        assert re.fullmatch(r"\d+\.\d\d", discount)
        if discount != "0.00":
            gross = int(qty) * float(price)
            assert 0.05 * gross - 0.006 <= float(discount) <= 0.30 * gross + 0.006

    returns = sum(int(r[6]) < 0 for r in rows) / len(rows)
    assert 0.01 <= returns <= 0.035
    receipts = {r[0]: r[5] for r in rows}
    anonymous = sum(c == "" for c in receipts.values()) / len(receipts)
    assert 0.2 <= anonymous <= 0.4
    assert Counter(r[10] for r in rows).most_common(1)[0][0] == "store"
    assert sum(r[8] != "0.00" for r in rows) > 0


def check_receipts(rows: list[list[str]]) -> None:
    """Receipts are contiguous, numbered in order, in time order, and share their header fields."""
    receipts: list[list[list[str]]] = []
    for row in rows:
        if receipts and receipts[-1][0][0] == row[0]:
            receipts[-1].append(row)
        else:
            receipts.append([row])
    ids = [int(r[0][0][1:]) for r in receipts]
    assert ids == list(range(1, len(receipts) + 1))
    assert [r[0][2] for r in receipts] == sorted(r[0][2] for r in receipts)
    for lines in receipts:
        assert 1 <= len(lines) <= 6
        assert [int(line[1]) for line in lines] == list(range(1, len(lines) + 1))
        # sold_at, store, customer, currency, channel, payment are the receipt's
        assert len({(line[2], line[3], line[5], line[9], line[10], line[11]) for line in lines}) == 1


def test_receipt_structure(clean: GeneratedData) -> None:
    check_receipts(parse_clean(clean.sales_path))


def test_weekends_are_busier(tmp_path: Path) -> None:
    data = generate(tmp_path, 20_000, days=28, dirty_rate=0)  # four whole weeks
    per_weekday = Counter(dt.date.fromisoformat(r[2][:10]).weekday() for r in parse_clean(data.sales_path))
    assert min(per_weekday[5], per_weekday[6]) > max(per_weekday[d] for d in range(5))


# --- dirt ---------------------------------------------------------------------------------


def test_dirt_counts_match_an_independent_recount(dirty: GeneratedData) -> None:
    assert recount(dirty) == as_counter(dirty.dirt)
    assert all(v > 0 for v in dataclasses.asdict(dirty.dirt).values())
    # Dirty lines per chunk are floor(rate * chunk end) - floor(rate * chunk start), so the
    # total is floor(rate * rows): exact, bar float rounding.
    assert abs(dirty.dirt.total - 0.02 * ROWS) <= 1


def test_malformed_lines_come_in_every_flavour(dirty: GeneratedData) -> None:
    lines = data_lines(dirty.sales_path)
    undecodable = [raw for raw in lines if b"\xe9" in raw]
    unbalanced = [raw for raw in lines if raw.count(b'"') % 2]
    wrong_count = [raw for raw in lines if raw not in undecodable and raw not in unbalanced
                   and len(next(csv.reader([raw.decode()]))) != 12]
    assert len(undecodable) >= 1 and len(unbalanced) == 1 and len(wrong_count) >= 1
    assert len(undecodable) + len(unbalanced) + len(wrong_count) == dirty.dirt.malformed_line
    assert unbalanced[0].startswith(b'"R')
    for raw in undecodable:  # the field count is still right
        assert len(next(csv.reader([raw.decode("latin-1")]))) == 12


def test_dirt_at_a_high_rate_on_a_leap_day(tmp_path: Path) -> None:
    # 2099 has no 29 February: a future date made from one must still parse.
    data = generate(tmp_path, 3_000, days=1, start_date=dt.date(2024, 2, 29), dirty_rate=0.3)
    assert data.dirt.total == 900
    assert recount(data) == as_counter(data.dirt)


def test_no_unbalanced_quote_in_small_files(tmp_path: Path) -> None:
    data = generate(tmp_path, 999, dirty_rate=0.3)
    assert data.dirt.malformed_line > 0
    assert not any(raw.count(b'"') % 2 for raw in data_lines(data.sales_path))
    assert recount(data) == as_counter(data.dirt)


def test_unbalanced_quotes_are_rare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generator, "CHUNK_ROWS", 50_000)
    data = generate(tmp_path, 250_000, dirty_rate=0.05)
    with open(data.sales_path, "rb") as f:
        assert sum(raw.count(b'"') % 2 for raw in f) == 2  # 250k // 100k

