"""Where dirty lines go in a chunk, and how a clean sales line is corrupted."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Same order as the fields of generator.DirtCounts.
KINDS = (
    "missing_product",
    "unknown_product",
    "zero_quantity",
    "bad_price",
    "bad_date",
    "future_date",
    "duplicate_line",
    "messy_text",
    "unknown_payment",
    "malformed_line",
)
(MISSING_PRODUCT, UNKNOWN_PRODUCT, ZERO_QUANTITY, BAD_PRICE, BAD_DATE, FUTURE_DATE, DUPLICATE_LINE, MESSY_TEXT,
 UNKNOWN_PAYMENT, MALFORMED_LINE) = range(len(KINDS))

# Field positions in a sales line.
SOLD_AT, STORE, SKU, CUSTOMER, QTY, UNIT_PRICE, DISCOUNT, CURRENCY, CHANNEL, PAYMENT = 2, 3, 4, 5, 6, 7, 8, 9, 10, 11

# None of these can be a real sku: products are numbered P00001..P99998.
UNKNOWN_SKUS = ("P99999", "X12345", "P00000", "SKU-404")
BAD_PRICES = ("N/A", "12,99x", "abc", "1.2.3", "?")
BAD_DATES = ("31/02/2024 10:00", "yesterday", "2024-13-45 10:00:00", "not a date", "2024-02-30 25:61:00")
UNKNOWN_PAYMENTS = ("bitcoin", "iou", "crypto")
_DROPPABLE = (CUSTOMER, DISCOUNT, CURRENCY)

# How a malformed line is broken; NOT_MALFORMED for every other kind.
NOT_MALFORMED, UNBALANCED_QUOTE, BAD_UTF8, MISSING_FIELD, EXTRA_FIELD = -1, 0, 1, 2, 3
# Rotation for malformed lines: one in five has a bad byte, the rest a wrong field count.
_MALFORMED_ROTATION = (BAD_UTF8, MISSING_FIELD, EXTRA_FIELD, MISSING_FIELD, EXTRA_FIELD)
MAX_DIRTY_SHARE = 1 / 3


@dataclass(frozen=True)
class DirtPlan:
    """Dirty slots of one chunk, sorted by position.

    At most one slot in each aligned triple (3p, 3p+1, 3p+2) is dirty and never the
    first, so a dirty line never directly follows another dirty line: the line a
    duplicate repeats is always clean, and in the same chunk.
    """

    positions: np.ndarray  # slot index within the chunk
    kinds: np.ndarray  # index into KINDS
    variants: np.ndarray  # picks the flavour of the corruption
    malformed: np.ndarray  # how a malformed line is broken, else NOT_MALFORMED


def plan_dirt(rng: np.random.Generator, n: int, first: int, count: int, quote_budget: int) -> DirtPlan:
    """Place ``count`` dirty lines among ``n`` slots (at most ``n // 3``).

    ``first`` is the global index of the chunk's first dirty line; kinds rotate over the
    global index so that every kind gets the same share (to within one) of the whole file.
    Up to ``quote_budget`` malformed lines get an unbalanced quote.
    """
    count = min(count, n // 3)
    triple = np.sort(rng.choice(n // 3, size=count, replace=False))
    positions = triple * 3 + 1 + rng.integers(0, 2, size=count)
    kinds = rng.permutation((first + np.arange(count)) % len(KINDS))
    variants = rng.integers(0, 1 << 30, size=count)
    malformed = np.full(count, NOT_MALFORMED, dtype=np.int8)
    at = np.flatnonzero(kinds == MALFORMED_LINE)
    malformed[at] = np.take(_MALFORMED_ROTATION, rng.permutation(at.size) % len(_MALFORMED_ROTATION))
    if quote_budget and at.size:
        malformed[rng.choice(at, size=min(quote_budget, at.size), replace=False)] = UNBALANCED_QUOTE
    return DirtPlan(positions.astype(np.int64), kinds, variants, malformed)


def _field(value: str) -> str:
    return f'"{value}"' if ("," in value or '"' in value) else value


def corrupt(kind: int, line: str, variant: int, malformed: int = NOT_MALFORMED) -> bytes:
    """Return ``line`` (a clean sales line, no line end) with one kind of dirt applied."""
    f = line.split(",")
    if kind == MISSING_PRODUCT:
        f[SKU] = ""
    elif kind == UNKNOWN_PRODUCT:
        f[SKU] = UNKNOWN_SKUS[variant % len(UNKNOWN_SKUS)]
    elif kind == ZERO_QUANTITY:
        f[QTY] = "0"
    elif kind == BAD_PRICE:
        f[UNIT_PRICE] = BAD_PRICES[variant % len(BAD_PRICES)]
    elif kind == BAD_DATE:
        f[SOLD_AT] = BAD_DATES[variant % len(BAD_DATES)]
    elif kind == FUTURE_DATE:
        rest = f[SOLD_AT][4:]
        f[SOLD_AT] = "2099" + ("-02-28" + rest[6:] if rest.startswith("-02-29") else rest)  # 2099 is no leap year
    elif kind == MESSY_TEXT:
        # Still valid after strip() and case folding (payment/channel lower, store/sku upper).
        which = variant % 5
        if which == 0:
            f[PAYMENT] = f" {f[PAYMENT].title()} "
        elif which == 1:
            f[PAYMENT] = f[PAYMENT].upper()
        elif which == 2:
            f[CHANNEL] = f[CHANNEL].title() + " "
        elif which == 3:
            f[STORE] = " " + f[STORE].lower()
        else:
            f[SKU] = f[SKU].lower() + "  "
    elif kind == UNKNOWN_PAYMENT:
        f[PAYMENT] = UNKNOWN_PAYMENTS[variant % len(UNKNOWN_PAYMENTS)]
    elif kind == MALFORMED_LINE:
        return _malformed(f, line, variant, malformed)
    else:  # duplicates are made by repeating the previous line, not here
        raise ValueError(f"cannot corrupt a line with kind {kind}")
    return ",".join(_field(v) for v in f).encode()


def _malformed(f: list[str], line: str, variant: int, how: int) -> bytes:
    if how == UNBALANCED_QUOTE:
        return ('"' + line).encode()
    if how == BAD_UTF8:  # a latin-1 byte in an otherwise well-formed line
        cust = (f[CUSTOMER] or "C000000").encode()
        left, right = ",".join(f[:CUSTOMER]), ",".join(f[CUSTOMER + 1:])
        return f"{left},".encode() + cust[:3] + b"\xe9" + cust[4:] + f",{right}".encode()
    if how == EXTRA_FIELD:  # a decimal comma, unquoted
        f[UNIT_PRICE] = f[UNIT_PRICE].replace(".", ",")
    elif how == MISSING_FIELD:
        del f[_DROPPABLE[variant % len(_DROPPABLE)]]
    else:
        raise ValueError(f"unknown malformation {how}")
    return ",".join(f).encode()
