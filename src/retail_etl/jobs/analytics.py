"""Analytics marts: daily aggregates over ``sales_enriched`` (pure SQL definitions).

Every measure is defined once here; ``docs/metrics.md`` states the same definitions in words.
Returns (``is_return``) are lines with a negative quantity in a source that allows returns.
- units_sold      = sum(quantity) of sale lines;  units_returned = -sum(quantity) of return lines
- gross_revenue   = sum(gross_amount) of sale lines (gross_amount = net_amount + discount_amount)
- discounts       = sum(discount_amount) of sale lines
- returns_amount  = -sum(net_amount) of return lines (a positive amount refunded)
- net_revenue     = sum(net_amount) of all lines = gross_revenue - discounts - returns_amount
- cost            = sum(cost_amount) of all lines (returned goods reduce cost)
- margin          = sum(margin) of all lines = net_revenue - cost
- transactions    = count(distinct transaction_id); lines = count(*)
- distinct_customers = count(distinct customer_id), anonymous lines not counted
- avg_basket_value = net_revenue / transactions, rounded half away from zero to cents
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

# net_revenue / transactions rounded half away from zero, in exact integer cents: a DECIMAL
# division would go through DOUBLE and could round a half-cent the wrong way.
_CENTS = "CAST(coalesce(sum(net_amount), 0) * 100 AS BIGINT)"
_TXNS = "count(DISTINCT transaction_id)"
_avg_basket = (
    f"CAST(CAST(sign({_CENTS}) * ((2 * abs({_CENTS}) + {_TXNS}) // (2 * {_TXNS})) AS DECIMAL(18, 0)) "
    "* CAST(0.01 AS DECIMAL(3, 2)) AS DECIMAL(18, 2)) AS avg_basket_value"
)

_MEASURES = f"""
    count(DISTINCT transaction_id) AS transactions,
    count(*) AS lines,
    coalesce(sum(quantity) FILTER (WHERE NOT is_return), 0) AS units_sold,
    coalesce(-sum(quantity) FILTER (WHERE is_return), 0) AS units_returned,
    coalesce(sum(gross_amount) FILTER (WHERE NOT is_return), 0) AS gross_revenue,
    coalesce(sum(discount_amount) FILTER (WHERE NOT is_return), 0) AS discounts,
    coalesce(-sum(net_amount) FILTER (WHERE is_return), 0) AS returns_amount,
    coalesce(sum(net_amount), 0) AS net_revenue,
    coalesce(sum(cost_amount), 0) AS cost,
    coalesce(sum(margin), 0) AS margin,
    count(DISTINCT customer_id) AS distinct_customers,
    {_avg_basket}
"""

_CASTS = {
    "units": "DECIMAL(38, 3)",  # the type DuckDB has always given it (a sum of DECIMAL(18, 3))
    "units_sold": "DECIMAL(18, 3)",
    "units_returned": "DECIMAL(18, 3)",
    "gross_revenue": "DECIMAL(18, 2)",
    "discounts": "DECIMAL(18, 2)",
    "returns_amount": "DECIMAL(18, 2)",
    "net_revenue": "DECIMAL(18, 2)",
    "cost": "DECIMAL(18, 2)",
    "margin": "DECIMAL(18, 2)",
}

MARTS: dict[str, str] = {
    "daily_sales": f"SELECT sale_date, {_MEASURES} FROM enriched GROUP BY sale_date",
    "category_daily": f"SELECT sale_date, category, {_MEASURES} FROM enriched GROUP BY sale_date, category",
    "store_daily": f"SELECT sale_date, store_id, {_MEASURES} FROM enriched GROUP BY sale_date, store_id",
    "product_daily": """
        SELECT sale_date, product_id, product_name, category,
               units, net_revenue, margin,
               CAST(rank() OVER (PARTITION BY sale_date ORDER BY net_revenue DESC) AS BIGINT) AS revenue_rank
        FROM (
            SELECT sale_date, product_id,
                   any_value(product_name) AS product_name, any_value(category) AS category,
                   coalesce(sum(quantity), 0) AS units,
                   coalesce(sum(net_amount), 0) AS net_revenue,
                   coalesce(sum(margin), 0) AS margin
            FROM enriched GROUP BY sale_date, product_id
        )
    """,
}

# Column order of each mart, and the ordering that makes its rows deterministic.
ORDER_BY = {
    "daily_sales": ("sale_date",),
    "category_daily": ("sale_date", "category"),
    "store_daily": ("sale_date", "store_id"),
    "product_daily": ("sale_date", "product_id"),
}


def mart_query(name: str, enriched: str, *, dialect: str = "duckdb") -> str:
    """The SELECT of mart ``name`` over the relation ``enriched``, rendered for ``dialect``."""
    query = sqlglot.parse_one(MARTS[name], dialect="duckdb")
    query = query.transform(
        lambda node: exp.to_table(enriched) if isinstance(node, exp.Table) and node.name == "enriched" else node
    )
    outer = exp.select(
        *[
            exp.cast(exp.column(col), to) .as_(col) if (to := _CASTS.get(col)) else exp.column(col)
            for col in _output_columns(query)
        ]
    ).from_(query.subquery("m"))
    return outer.order_by(*ORDER_BY[name]).sql(dialect=dialect)


def _output_columns(query: exp.Query) -> list[str]:
    return [s.alias_or_name for s in query.selects]
