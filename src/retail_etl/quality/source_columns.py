"""The ``source`` namespace: a source's own columns, named as ``source."<column>"`` in derived
formulas and ``CustomSql`` queries (pure sqlglot rewrites, shared by the mapping and the rules)."""

from __future__ import annotations

from sqlglot import exp

#: The namespace of a source's own columns in derived formulas: ``source."Coupon Discount"``.
SOURCE_NAMESPACE = "source"


def is_source_ref(col: exp.Column) -> bool:
    """Whether ``col`` is written ``source."<column>"``."""
    return col.table.casefold() == SOURCE_NAMESPACE and not col.args.get("db")


def carried_column(column: str) -> str:
    """The name under which validation carries ``sources.mapping.source_value`` of ``column`` next to the
    canonical columns, for ``CustomSql`` queries (it cannot clash with a canonical name)."""
    return f"_source_{column.casefold()}"


def with_source_columns(query: exp.Expression) -> tuple[exp.Expression, tuple[str, ...]]:
    """``query`` with each ``source."<column>"`` replaced by its :func:`carried_column`, and the
    source columns so named (each once, case-insensitively)."""
    named: dict[str, str] = {}

    def carry(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and is_source_ref(node):
            named.setdefault(node.name.casefold(), node.name)
            return exp.column(carried_column(node.name), quoted=True)
        return node

    return query.transform(carry), tuple(named.values())
