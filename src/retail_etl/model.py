"""The canonical data model every source is mapped onto.

Rules, transformations and metrics are written against these names only; a source's
configuration says how its own columns become these (see ``config.model.SourceConfig``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from retail_etl.config.model import SourceConfig


@dataclass(frozen=True)
class Derivation:
    """A formula for a column the source does not give, usable when the source gives every column
    of ``needs`` (maps, derives or defaults it); alternatives are tried in order."""

    expr: str
    needs: tuple[str, ...]


@dataclass(frozen=True)
class CanonicalColumn:
    """One column of a canonical entity.

    ``type`` is a SQL type name understood by every engine (rendered through sqlglot).
    ``derivations`` are tried first, then ``default_expr``: SQL expressions over other canonical
    columns, used when the source neither maps nor derives the column.
    ``kind`` marks the columns whose type follows the money scale (``amount``, ``price``).
    """

    name: str
    type: str
    required: bool = False
    default_expr: str | None = None
    blank_value: str | None = None  # a blank mapped value means this (e.g. no discount = 0)
    description: str = ""
    derivations: tuple[Derivation, ...] = ()
    kind: str | None = None


@dataclass(frozen=True)
class Entity:
    """A canonical entity: its columns, and groups of which at least one must be provided."""

    name: str
    columns: tuple[CanonicalColumn, ...]
    one_of: tuple[tuple[str, ...], ...] = field(default_factory=tuple)

    def column(self, name: str) -> CanonicalColumn:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


QUANTITY = "DECIMAL(18,3)"
#: A quantity as it enters a product. DuckDB multiplies two decimals of at most 18 digits in 64 bits
#: and raises on overflow (a barcode typed as a quantity), one of 19 digits in 128 bits; Spark keeps
#: the exact scale while p1 + p2 + 1 <= 38.
QUANTITY_OPERAND = "DECIMAL(19,3)"
#: A discount rate, always stored as a fraction (a percentage is divided by 100 when read).
RATE = "DECIMAL(9,6)"
RATE_SCALE = 6
#: Money scale of a source that declares none.
DEFAULT_SCALE = 2


def amount_type(scale: int) -> str:
    """Line amounts at ``scale``: 16 integer digits, whatever the scale."""
    return f"DECIMAL({16 + scale},{scale})"


def price_type(scale: int) -> str:
    """Unit prices and costs: at least 4 decimals, more when the money scale has more."""
    places = max(4, scale)
    return f"DECIMAL({14 + places},{places})"


def sum_type(scale: int) -> str:
    """Sums of line amounts in the marts: the widest decimal, so that no sane total overflows."""
    return f"DECIMAL(38,{scale})"


MONEY = amount_type(DEFAULT_SCALE)
PRICE = price_type(DEFAULT_SCALE)

# The discount from a rate over the line before discount: exact (the product is narrowed first so
# that no engine reduces its scale; Spark would beyond 38 digits).
_RATE_ON_GROSS = "CAST(quantity * unit_price AS DECIMAL(29,9)) * discount_rate"
# The discount from a rate when only the paid amount is known: net / (1 - rate) - net, a quotient.
_RATE_ON_NET = "net_amount * discount_rate / (1 - discount_rate)"

SALES = Entity(
    name="sales",
    columns=(
        CanonicalColumn("transaction_id", "VARCHAR", required=True, description="Receipt / order id."),
        CanonicalColumn("line_number", "INTEGER", description="Line within the transaction, if the source has one."),
        CanonicalColumn("sold_at", "TIMESTAMP", description="When the sale happened."),
        CanonicalColumn(
            "sale_date", "DATE", default_expr="CAST(sold_at AS DATE)", description="Business date of the sale."
        ),
        CanonicalColumn("store_id", "VARCHAR", required=True),
        CanonicalColumn("product_id", "VARCHAR", required=True),
        CanonicalColumn("customer_id", "VARCHAR"),
        CanonicalColumn("quantity", QUANTITY, required=True, description="Units; negative for returns."),
        CanonicalColumn(
            "unit_price",
            PRICE,
            default_expr="(net_amount + discount_amount) / NULLIF(quantity, 0)",
            description="Price of one unit before discount.",
            kind="price",
        ),
        CanonicalColumn(
            "discount_amount",
            MONEY,
            default_expr="0",
            blank_value="0",
            description="Discount on the whole line.",
            derivations=(
                Derivation(_RATE_ON_GROSS, ("unit_price", "discount_rate")),
                Derivation(_RATE_ON_NET, ("net_amount", "discount_rate")),
            ),
            kind="amount",
        ),
        CanonicalColumn(
            "net_amount",
            MONEY,
            default_expr="quantity * unit_price - discount_amount",
            description="Amount paid for the line after discount.",
            kind="amount",
        ),
        CanonicalColumn("currency", "VARCHAR"),
        CanonicalColumn("channel", "VARCHAR"),
        CanonicalColumn("payment_method", "VARCHAR"),
        CanonicalColumn(
            "discount_rate", RATE, blank_value="0",
            description="Discount as a share of the line before discount (money.discount_rate: fraction | percent).",
        ),
        CanonicalColumn(
            "unit_cost", PRICE, kind="price", description="Cost of one unit, when the line carries it.",
            derivations=(Derivation("cost_amount / NULLIF(quantity, 0)", ("cost_amount",)),
                         Derivation("cost_amount / NULLIF(quantity, 0)", ("margin",))),
        ),
        CanonicalColumn(
            "cost_amount", MONEY, kind="amount", description="Cost of the line; NULL when unknown.",
            derivations=(Derivation("quantity * unit_cost", ("unit_cost",)),
                         Derivation("net_amount - margin", ("margin",))),
        ),
        CanonicalColumn(
            "margin", MONEY, kind="amount",
            description="Profit of the line as the extract gives it; NULL when unknown.",
            derivations=(Derivation("net_amount - cost_amount", ("cost_amount",)),
                         Derivation("net_amount - cost_amount", ("unit_cost",))),
        ),
        # Product attributes carried by the line; the product master wins where it knows the product.
        CanonicalColumn("product_name", "VARCHAR"),
        CanonicalColumn("category", "VARCHAR"),
        CanonicalColumn("subcategory", "VARCHAR"),
        CanonicalColumn("brand", "VARCHAR"),
    ),
    # A sale needs a date, and a price or a line total.
    one_of=(("sold_at", "sale_date"), ("unit_price", "net_amount")),
)

PRODUCTS = Entity(
    name="products",
    columns=(
        CanonicalColumn("product_id", "VARCHAR", required=True),
        CanonicalColumn("product_name", "VARCHAR"),
        CanonicalColumn("category", "VARCHAR"),
        CanonicalColumn("subcategory", "VARCHAR"),
        CanonicalColumn("brand", "VARCHAR"),
        CanonicalColumn("unit_cost", PRICE),
        CanonicalColumn("list_price", PRICE),
    ),
)

ENTITIES: dict[str, Entity] = {e.name: e for e in (SALES, PRODUCTS)}

#: Product attributes a sales line may carry (the master's win).
PRODUCT_ATTRIBUTES = ("product_name", "category", "subcategory", "brand")


@dataclass(frozen=True)
class Scales:
    """The decimal places of the sales tables' money columns.

    ``money`` is the widest money scale the sales sources declare (unit prices follow it); ``lines``
    the scale of line amounts, wider when a discount rate is applied to the line before discount
    (so that the discount stays exact: see :func:`line_scale`).
    """

    money: int = DEFAULT_SCALE
    lines: int = DEFAULT_SCALE

    @classmethod
    def of(cls, sources: Iterable[tuple[int, bool]]) -> Scales:
        """The scales of a table fed by ``sources``: (money scale, discount rate on the gross) each."""
        given = list(sources)
        return cls(max((s for s, _ in given), default=DEFAULT_SCALE),
                   max((line_scale(s, g) for s, g in given), default=DEFAULT_SCALE))


def line_scale(money_scale: int, rate_on_gross: bool) -> int:
    """Line amounts keep ``money_scale`` places, plus the rate's when a rate multiplies the line before
    discount: the discount of whole units at prices of ``money_scale`` places is then exact."""
    return money_scale + RATE_SCALE if rate_on_gross else money_scale


def typed(entity: Entity, scales: Scales) -> Entity:
    """``entity`` with its money columns typed for ``scales``."""
    types = {"amount": amount_type(scales.lines), "price": price_type(scales.money)}
    return replace(entity, columns=tuple(
        replace(c, type=types[c.kind]) if c.kind in types else c for c in entity.columns))

# Lineage columns added to every processed row.
LINEAGE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("source", "VARCHAR"),
    ("source_file", "VARCHAR"),
    ("delivery_id", "VARCHAR"),
    ("source_line", "BIGINT"),
    ("run_id", "VARCHAR"),
)


#: A reference's key is the column facts join it on: enforced before any join, never declared otherwise.
REFERENCE_KEYS = {"products": ("product_id",)}


def reference_key(source: SourceConfig) -> tuple[str, ...] | None:
    """The key validation enforces on ``source``'s valid rows: a reference's join key (declared or
    not); None for a fact source, whose key the transform enforces over all its deliveries."""
    default = REFERENCE_KEYS.get(source.entity)
    return (source.key or default) if default else None
