"""The canonical data model every source is mapped onto.

Rules, transformations and metrics are written against these names only; a source's
configuration says how its own columns become these (see ``config.model.SourceConfig``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CanonicalColumn:
    """One column of a canonical entity.

    ``type`` is a SQL type name understood by every engine (rendered through sqlglot).
    ``default_expr`` is a SQL expression over other canonical columns, used when the
    source neither maps nor derives the column.
    """

    name: str
    type: str
    required: bool = False
    default_expr: str | None = None
    blank_value: str | None = None  # a blank mapped value means this (e.g. no discount = 0)
    description: str = ""


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


MONEY = "DECIMAL(18,2)"
PRICE = "DECIMAL(18,4)"
QUANTITY = "DECIMAL(18,3)"

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
        ),
        CanonicalColumn(
            "discount_amount", MONEY, default_expr="0", blank_value="0", description="Discount on the whole line."
        ),
        CanonicalColumn(
            "net_amount",
            MONEY,
            default_expr="quantity * unit_price - discount_amount",
            description="Amount paid for the line after discount.",
        ),
        CanonicalColumn("currency", "VARCHAR"),
        CanonicalColumn("channel", "VARCHAR"),
        CanonicalColumn("payment_method", "VARCHAR"),
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

# Lineage columns added to every processed row.
LINEAGE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("source", "VARCHAR"),
    ("source_file", "VARCHAR"),
    ("source_line", "BIGINT"),
    ("run_id", "VARCHAR"),
)
