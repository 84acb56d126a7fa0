"""Fast, deterministic sample data: a product catalogue and a sales file with known dirt.

Sales are generated in chunks of ``CHUNK_ROWS`` lines, each from its own random stream
seeded by ``(seed, chunk index)``, vectorised with numpy and formatted with pyarrow
compute kernels; the few dirty lines are spliced in as bytes. The output depends only on
the arguments (and ``CHUNK_ROWS``), so equal arguments give byte-identical files.

Readers must cope with what ``malformed_line`` produces: lines with 11 or 13 fields, a
non-UTF-8 byte, and (rarely) an opening quote that is never closed, which makes a
standard CSV reader run on past the end of that line.
"""

from __future__ import annotations

import datetime
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from retail_etl.errors import from_os_error
from retail_etl.sample.catalog import Catalog, build_catalog, write_products
from retail_etl.sample.dirt import DUPLICATE_LINE, KINDS, MAX_DIRTY_SHARE, DirtPlan, corrupt, plan_dirt

__all__ = ["DirtCounts", "GeneratedData", "generate", "SALES_HEADER"]

SALES_HEADER = (
    "receipt_id", "line_no", "sold_at", "store", "sku", "customer_id", "qty", "unit_price", "discount",
    "currency", "channel", "payment_method",
)
CHUNK_ROWS = 250_000  # part of the output: changing it changes the bytes

STORES = tuple(f"S{i:03d}" for i in range(1, 26))
CHANNELS = ("store", "web", "mobile")
PAYMENTS = ("card", "cash", "mobile", "voucher")
_CHANNEL_P = (0.82, 0.11, 0.07)
_PAYMENT_P = (0.55, 0.27, 0.14, 0.04)
_RECEIPT_SIZE_P = (0.32, 0.24, 0.18, 0.12, 0.08, 0.06)  # 1..6 lines
_QTY_P = (0.72, 0.16, 0.06, 0.04, 0.02)  # 1..5 units
_RETURN_RATE = 0.02
_DISCOUNT_RATE = 0.12
_ANONYMOUS_RATE = 0.30
_OPEN_HOUR = 7
_HOUR_WEIGHTS = (0.4, 0.7, 0.8, 0.9, 1.1, 1.5, 1.4, 1.0, 0.9, 1.1, 1.6, 1.8, 1.4, 0.9, 0.5)  # 07:00..21:59
_WEEKDAY_WEIGHTS = (0.9, 0.9, 0.95, 1.0, 1.2, 1.6, 1.3)  # Monday..Sunday
_MAX_PRODUCTS = 99_998  # P99999 is reserved as an unknown sku
_MAX_WORKERS = 4


@dataclass(frozen=True)
class DirtCounts:
    """How many sales lines of each kind of dirt were written; each dirty line has one kind."""

    missing_product: int
    unknown_product: int
    zero_quantity: int
    bad_price: int
    bad_date: int
    future_date: int
    duplicate_line: int
    messy_text: int
    unknown_payment: int
    malformed_line: int

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))


assert tuple(f.name for f in fields(DirtCounts)) == KINDS


@dataclass(frozen=True)
class GeneratedData:
    """Where the files went and what is in them."""

    sales_path: Path
    products_path: Path
    rows: int  # data lines in sales.csv (excluding the header), duplicates and malformed lines included
    products: int
    dirt: DirtCounts


class _Timeline:
    """Maps quantiles in [0, 1) monotonically onto shop-hour timestamps, busier on weekends."""

    def __init__(self, start: datetime.date, days: int) -> None:
        weekday = (start.weekday() + np.arange(days)) % 7
        weight = (np.asarray(_WEEKDAY_WEIGHTS)[weekday][:, None] * np.asarray(_HOUR_WEIGHTS)[None, :]).ravel()
        cdf = np.concatenate(([0.0], np.cumsum(weight)))
        self._cdf = cdf / cdf[-1]
        self._epoch0 = (start - datetime.date(1970, 1, 1)).days * 86_400

    def seconds(self, u: np.ndarray) -> np.ndarray:
        """Epoch seconds for sorted quantiles ``u``; the result is sorted too."""
        hour_bin = np.clip(np.searchsorted(self._cdf, u, side="right") - 1, 0, len(self._cdf) - 2)
        lo, hi = self._cdf[hour_bin], self._cdf[hour_bin + 1]
        second = np.minimum(((u - lo) / (hi - lo) * 3600).astype(np.int64), 3599)
        day, hour = np.divmod(hour_bin, len(_HOUR_WEIGHTS))
        return self._epoch0 + day * 86_400 + (_OPEN_HOUR + hour) * 3600 + second


def _money(cents: np.ndarray) -> pa.Array:
    """Non-negative cents as ``d.dd`` strings."""
    whole = pa.array(cents // 100).cast(pa.string())
    frac = pc.utf8_lpad(pa.array(cents % 100).cast(pa.string()), width=2, padding="0")
    return pc.binary_join_element_wise(whole, frac, ".")


def _padded(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    digits = pc.utf8_lpad(pa.array(numbers).cast(pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _draw(rng: np.random.Generator, cdf: np.ndarray, size: int) -> np.ndarray:
    """Indices drawn with probabilities given by a cumulative distribution (faster than choice)."""
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), len(cdf) - 1)


def _cdf(p: tuple[float, ...] | np.ndarray) -> np.ndarray:
    c = np.cumsum(p, dtype=np.float64)
    return c / c[-1]


@dataclass
class _Chunk:
    """One chunk to render: lines ``r0..r1-1`` of the file, already laid out.

    Laying out (the dirt plan and receipt sizes) is cheap and sequential because receipt
    ids run across chunks; rendering is the heavy part and can run on any thread.
    """

    r0: int
    r1: int
    rng: np.random.Generator
    plan: DirtPlan
    receipt_sizes: np.ndarray
    first_receipt: int


class _SalesRenderer:
    """Formats sales lines from lookup tables with pyarrow kernels; dirt is spliced in as bytes."""

    def __init__(self, catalog: Catalog, timeline: _Timeline, rows: int, seed: int, dirty_rate: float) -> None:
        self._catalog = catalog
        self._timeline = timeline
        self._rows = rows
        self._seed = seed
        self._dirty_rate = dirty_rate
        self._customers = min(999_999, max(500, rows // 8))
        # Unbalanced quotes swallow the rest of the file in naive readers: ~1 per 100k lines at most.
        self._quotes = max(1, rows // 100_000) if rows >= 1000 else 0
        self._next_receipt = 1

        n_products = len(catalog)
        self._skus = pa.array(catalog.skus, pa.string())
        self._product_cdf = _cdf(catalog.popularity)
        self._line_nos = pa.array([str(i) for i in range(1, len(_RECEIPT_SIZE_P) + 1)], pa.string())
        # "qty,unit_price" for every (qty, product): row (qty + 5) * n_products + product.
        qtys = pa.array([str(q) for q in range(-5, 6)], pa.string())
        self._qty_prices = pc.binary_join_element_wise(
            qtys.take(np.repeat(np.arange(11), n_products)),
            _money(np.tile(catalog.list_price_cents, 11)),
            ",",
        )
        max_discount = int(len(_QTY_P) * int(catalog.list_price_cents.max()) * 0.30) + 2
        self._discounts = _money(np.arange(max_discount))
        # "currency,channel,payment_method\n" for every (channel, payment).
        self._tails = pa.array([f"EUR,{c},{p}\n" for c in CHANNELS for p in PAYMENTS], pa.string())
        self._stores = pa.array(STORES, pa.string())
        self._store_cdf = _cdf(_store_weights())

    def lay_out(self, index: int, r0: int, r1: int) -> _Chunk:
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence((self._seed, index))))
        n = r1 - r0
        first_dirty = int(self._dirty_rate * r0)
        budget = self._quotes * r1 // self._rows - self._quotes * r0 // self._rows
        plan = plan_dirt(rng, n, first_dirty, int(self._dirty_rate * r1) - first_dirty, budget)

        # A duplicate slot takes no fresh line: it shows the line before it again.
        fresh = n - int(np.count_nonzero(plan.kinds == DUPLICATE_LINE))

        # Receipts of 1-6 lines until they cover the fresh lines; the last one is cut to fit.
        sizes = _draw(rng, _cdf(_RECEIPT_SIZE_P), fresh) + 1
        ends = np.cumsum(sizes)
        n_receipts = int(np.searchsorted(ends, fresh)) + 1
        sizes = sizes[:n_receipts]
        sizes[-1] -= ends[n_receipts - 1] - fresh
        chunk = _Chunk(r0, r1, rng, plan, sizes, self._next_receipt)
        self._next_receipt += n_receipts
        return chunk

    def render(self, chunk: _Chunk) -> tuple[list[memoryview | bytes], np.ndarray]:
        """The chunk as byte pieces to write in order, and its dirt counts by kind.

        The fresh lines are one pyarrow buffer; dirty lines are spliced in between slices
        of it, so nothing is copied for the clean majority.
        """
        lines = self._clean_lines(chunk)
        offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset:]
        data = memoryview(lines.buffers()[2])
        plan = chunk.plan

        pieces: list[memoryview | bytes] = []
        emitted = 0  # fresh lines written so far
        dups = 0
        for pos, kind, variant, malformed in zip(plan.positions.tolist(), plan.kinds.tolist(),
                                                 plan.variants.tolist(), plan.malformed.tolist()):
            if kind == DUPLICATE_LINE:
                dups += 1
            line = pos - dups  # the fresh line this slot shows; for a duplicate, the one before it
            if kind == DUPLICATE_LINE:
                pieces.append(data[offsets[emitted]:offsets[line + 1]])
                pieces.append(data[offsets[line]:offsets[line + 1]])
            else:
                pieces.append(data[offsets[emitted]:offsets[line]])
                clean = bytes(data[offsets[line]:offsets[line + 1] - 1]).decode()
                pieces.append(corrupt(kind, clean, variant, malformed) + b"\n")
            emitted = line + 1
        pieces.append(data[offsets[emitted]:offsets[len(lines)]])
        return pieces, np.bincount(plan.kinds, minlength=len(KINDS))

    def _clean_lines(self, chunk: _Chunk) -> pa.StringArray:
        rng, sizes = chunk.rng, chunk.receipt_sizes
        n_receipts = len(sizes)
        n = int(sizes.sum())
        receipt = np.repeat(np.arange(n_receipts), sizes)
        starts = np.cumsum(sizes) - sizes
        line_no = np.arange(n) - starts[receipt]  # 0-based

        # Receipt attributes. The chunk owns its share [r0/rows, r1/rows) of the time line,
        # so sorted quantiles keep the whole file in time order.
        u = np.sort(rng.uniform(chunk.r0 / self._rows, chunk.r1 / self._rows, size=n_receipts))
        sold_at = pa.array(self._timeline.seconds(u), pa.timestamp("s")).cast(pa.string())
        store = _draw(rng, self._store_cdf, n_receipts)
        sold_at_store = pc.binary_join_element_wise(sold_at, self._stores.take(store), ",")
        receipt_ids = _padded("R", chunk.first_receipt + np.arange(n_receipts), 9)
        channel = _draw(rng, _cdf(_CHANNEL_P), n_receipts)
        payment = _draw(rng, _cdf(_PAYMENT_P), n_receipts)
        payment[(channel != 0) & (payment == 1)] = 0  # no cash online
        # Customers are skewed towards low ids: regulars come back.
        customer_no = (rng.random(n_receipts) ** 2 * self._customers).astype(np.int64) + 1
        anonymous = rng.random(n_receipts) < _ANONYMOUS_RATE
        customers = pc.if_else(pa.array(anonymous), "", _padded("C", customer_no, 6))

        # Line attributes.
        product = _draw(rng, self._product_cdf, n)
        qty = _draw(rng, _cdf(_QTY_P), n) + 1
        is_return = rng.random(n) < _RETURN_RATE
        discounted = (rng.random(n) < _DISCOUNT_RATE) & ~is_return
        pct = rng.uniform(0.05, 0.30, size=n)
        discount = np.where(
            discounted, np.rint(qty * self._catalog.list_price_cents[product] * pct), 0
        ).astype(np.int64)
        qty = np.where(is_return, -qty, qty)

        return pc.binary_join_element_wise(
            receipt_ids.take(receipt),
            self._line_nos.take(line_no),
            sold_at_store.take(receipt),
            self._skus.take(product),
            customers.take(receipt),
            self._qty_prices.take((qty + 5) * len(self._catalog) + product),
            self._discounts.take(discount),
            self._tails.take((channel * len(PAYMENTS) + payment)[receipt]),
            ",",
        )


def _store_weights() -> np.ndarray:
    # Fixed, uneven store sizes: a few flagships, many small shops.
    w = 1.0 / (np.arange(len(STORES)) % 9 + 2.0)
    return w / w.sum()


def generate(
    out_dir: Path | str,
    rows: int,
    days: int = 30,
    *,
    seed: int = 42,
    dirty_rate: float = 0.02,
    start_date: datetime.date = datetime.date(2024, 1, 1),
    products: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> GeneratedData:
    """Write ``out_dir/sales.csv`` (``rows`` data lines) and ``out_dir/products.csv``.

    ``dirty_rate`` (0..1/3) is the share of sales lines that get exactly one kind of dirt;
    the kinds share it evenly and ``floor(dirty_rate * rows)`` lines are dirty in total.
    ``products`` defaults to ``min(2000, max(50, rows // 200))``. ``progress`` is called
    with the number of lines written so far after each chunk.
    """
    if rows < 0:
        raise ValueError("rows must be >= 0")
    if days < 1:
        raise ValueError("days must be >= 1")
    if seed < 0:
        raise ValueError("seed must be >= 0")
    if not 0.0 <= dirty_rate <= MAX_DIRTY_SHARE:
        raise ValueError(f"dirty_rate must be between 0 and {MAX_DIRTY_SHARE:.3f}")
    n_products = min(2000, max(50, rows // 200)) if products is None else products
    if not 1 <= n_products <= _MAX_PRODUCTS:
        raise ValueError(f"products must be between 1 and {_MAX_PRODUCTS}")

    out = Path(out_dir)
    try:
        return _write(out, rows, n_products, seed, dirty_rate, _Timeline(start_date, days), progress)
    except OSError as exc:
        raise from_os_error(exc, action="write sample data to", path=exc.filename or out) from exc


def _write(
    out: Path, rows: int, n_products: int, seed: int, dirty_rate: float, timeline: _Timeline,
    progress: Callable[[int], None] | None,
) -> GeneratedData:
    out.mkdir(parents=True, exist_ok=True)
    sales_path, products_path = out / "sales.csv", out / "products.csv"

    catalog = build_catalog(n_products, seed)
    write_products(catalog, products_path)

    renderer = _SalesRenderer(catalog, timeline, rows, seed, dirty_rate)
    counts = np.zeros(len(KINDS), dtype=np.int64)
    bounds = [(r0, min(rows, r0 + CHUNK_ROWS)) for r0 in range(0, rows, CHUNK_ROWS)]
    workers = max(1, min(_MAX_WORKERS, os.cpu_count() or 1))
    # Chunks render on a few threads (pyarrow and numpy release the GIL) and are written in
    # order; at most workers + 1 are in flight, which bounds memory.
    with open(sales_path, "wb") as f, ThreadPoolExecutor(workers) as pool:
        f.write((",".join(SALES_HEADER) + "\n").encode())
        pending: deque[tuple[int, Future[tuple[list[memoryview | bytes], np.ndarray]]]] = deque()
        for index, (r0, r1) in enumerate(bounds):
            pending.append((r1, pool.submit(renderer.render, renderer.lay_out(index, r0, r1))))
            while pending and (len(pending) > workers or index == len(bounds) - 1):
                written, future = pending.popleft()
                pieces, chunk_counts = future.result()
                f.writelines(pieces)
                counts += chunk_counts
                if progress is not None:
                    progress(written)

    return GeneratedData(
        sales_path=sales_path,
        products_path=products_path,
        rows=rows,
        products=n_products,
        dirt=DirtCounts(*(int(c) for c in counts)),
    )
