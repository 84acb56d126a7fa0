"""Analytics marts: aggregates over ``sales_enriched`` (pure SQL definitions), the four daily
defaults and the marts declared in configuration (a grain, a time grain, measures by name).

Every measure is defined once here (:data:`MEASURES`); ``docs/metrics.md`` states the same definitions in words.
Returns (``is_return``) are lines with a negative quantity in a source that allows returns.
- units_sold      = sum(quantity) of sale lines;  units_returned = -sum(quantity) of return lines
- gross_revenue   = sum(gross_amount) of sale lines (gross_amount = net_amount + discount_amount)
- discounts       = sum(discount_amount) of sale lines
- returns_amount  = -sum(net_amount) of return lines (a positive amount refunded)
- net_revenue     = sum(net_amount) of all lines = gross_revenue - discounts - returns_amount
- cost            = sum(cost_amount) of the lines with a cost (returned goods reduce cost); NULL if none has
- margin          = sum(margin) of the lines with a margin; NULL if none has
- lines_without_cost = count of lines whose cost is unknown
- transactions    = count(distinct transaction_id); lines = count(*)
- distinct_customers = count(distinct customer_id), anonymous lines not counted
- avg_basket_value = net_revenue / transactions, rounded half away from zero to the money scale
Sums are exact (DECIMAL(38, line scale)); avg_basket_value is the only rounded measure.
"""

from __future__ import annotations

import datetime as dt

import sqlglot
from sqlglot import exp

from retail_etl.model import Scales, sum_type
from retail_etl.quoting import ident

_TXNS = "count(DISTINCT transaction_id)"


def _avg_basket(scales: Scales) -> str:
    """net_revenue / transactions rounded half away from zero to the money scale, in exact integers
    of the line scale's unit: a DECIMAL division would go through DOUBLE and could round a tie the
    wrong way."""
    units = f"CAST(coalesce(sum(net_amount), 0) * {10 ** scales.lines} AS BIGINT)"
    per = f"{_TXNS} * {10 ** (scales.lines - scales.money)}"
    return (
        f"CAST(CAST(sign({units}) * ((2 * abs({units}) + {per}) // (2 * {per})) AS DECIMAL(18, 0)) "
        f"* CAST({_unit(scales.money)} AS DECIMAL({scales.money + 1}, {scales.money})) "
        f"AS DECIMAL(18, {scales.money})) AS avg_basket_value"
    )


def _unit(scale: int) -> str:
    """One unit of the last decimal place at ``scale`` (0.01 at 2), as SQL number text."""
    return f"0.{'0' * (scale - 1)}1" if scale else "1"


#: The measure vocabulary: every measure of every mart, defined once, by name (declared marts pick
#: from it). ``{avg_basket}`` is filled in for the money scales.
MEASURES: dict[str, str] = {
    "transactions": _TXNS,
    "lines": "count(*)",
    "units": "coalesce(sum(quantity), 0)",
    "units_sold": "coalesce(sum(quantity) FILTER (WHERE NOT is_return), 0)",
    "units_returned": "coalesce(-sum(quantity) FILTER (WHERE is_return), 0)",
    "gross_revenue": "coalesce(sum(gross_amount) FILTER (WHERE NOT is_return), 0)",
    "discounts": "coalesce(sum(discount_amount) FILTER (WHERE NOT is_return), 0)",
    "returns_amount": "coalesce(-sum(net_amount) FILTER (WHERE is_return), 0)",
    "net_revenue": "coalesce(sum(net_amount), 0)",
    "cost": "sum(cost_amount)",
    "margin": "sum(margin)",
    "lines_without_cost": "count(*) FILTER (WHERE cost_amount IS NULL)",
    "distinct_customers": "count(DISTINCT customer_id)",
    "avg_basket_value": "{avg_basket}",
}

#: The measures of daily_sales, category_daily and store_daily, in column order.
_DAILY = ("transactions", "lines", "units_sold", "units_returned", "gross_revenue", "discounts",
          "returns_amount", "net_revenue", "cost", "margin", "lines_without_cost", "distinct_customers",
          "avg_basket_value")


def _select(measures: tuple[str, ...]) -> str:
    """The SELECT list of ``measures``, each under its own name."""
    return ", ".join(
        MEASURES[m] if m == "avg_basket_value" else f"{MEASURES[m]} AS {m}" for m in measures
    )


_MEASURES = _select(_DAILY)
_PRODUCT_MEASURES = _select(("units", "net_revenue", "margin", "lines_without_cost"))

_QUANTITIES = {
    "units": "DECIMAL(38, 3)",  # the type DuckDB has always given it (a sum of DECIMAL(18, 3))
    "units_sold": "DECIMAL(18, 3)",
    "units_returned": "DECIMAL(18, 3)",
}
_SUMS = ("gross_revenue", "discounts", "returns_amount", "net_revenue", "cost", "margin")


def _casts(scales: Scales) -> dict[str, str]:
    return {**_QUANTITIES, **dict.fromkeys(_SUMS, sum_type(scales.lines))}


MARTS: dict[str, str] = {
    "daily_sales": f"SELECT sale_date, {_MEASURES} FROM enriched GROUP BY sale_date",
    "category_daily": f"SELECT sale_date, category, {_MEASURES} FROM enriched GROUP BY sale_date, category",
    "store_daily": f"SELECT sale_date, store_id, {_MEASURES} FROM enriched GROUP BY sale_date, store_id",
    "product_daily": f"""
        SELECT sale_date, product_id, product_name, category,
               units, net_revenue, margin, lines_without_cost,
               CAST(rank() OVER (PARTITION BY sale_date ORDER BY net_revenue DESC) AS BIGINT) AS revenue_rank
        FROM (
            SELECT sale_date, product_id,
                   any_value(product_name) AS product_name, any_value(category) AS category,
                   {_PRODUCT_MEASURES}
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


def mart_query(name: str, enriched: str, *, dialect: str = "duckdb", scales: Scales = Scales()) -> str:
    """The SELECT of mart ``name`` over the relation ``enriched``, rendered for ``dialect``;
    ``scales`` are the money scales of ``enriched``."""
    return _render(MARTS[name], ORDER_BY[name], enriched, dialect=dialect, scales=scales)


# -- declared marts ---------------------------------------------------------------------------------

TIME_GRAINS = ("day", "week", "month", "all")

#: Columns of ``sales_enriched`` a declared mart can group by (the declared attributes too).
GRAIN_COLUMNS = (
    "store_id", "product_id", "customer_id", "transaction_id", "currency", "channel", "payment_method",
    "is_return", "product_name", "category", "subcategory", "brand", "year", "quarter", "month",
    "iso_year", "iso_week", "weekday", "source", "source_file",
)

#: The start of a row's period, by time grain (ISO weeks start on Monday in both engines).
_PERIOD_START = {
    "day": "sale_date",
    "week": "CAST(date_trunc('week', sale_date) AS DATE)",
    "month": "CAST(date_trunc('month', sale_date) AS DATE)",
}


def period_column(time: str) -> str | None:
    """The period column of a declared mart of time grain ``time`` (its partition), None for ``all``."""
    return {"day": "sale_date", "week": "week_start", "month": "month_start"}.get(time)


def period_start(time: str, day: dt.date) -> dt.date:
    """The first day of the ``time`` period (day, week or month) that ``day`` falls in."""
    if time == "week":
        return day - dt.timedelta(days=day.weekday())
    if time == "month":
        return day.replace(day=1)
    return day


def period_end(time: str, start: dt.date) -> dt.date:
    """The last day of the ``time`` period starting on ``start``."""
    if time == "week":
        return start + dt.timedelta(days=6)
    if time == "month":
        return (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
    return start


def declared_query(grain: tuple[str, ...], time: str, measures: tuple[str, ...], enriched: str, *,
                   dialect: str = "duckdb", scales: Scales = Scales()) -> str:
    """The SELECT of a declared mart over ``enriched``: one row per period and ``grain`` value, the
    ``measures`` (names of :data:`MEASURES`) as columns."""
    period = period_column(time)
    keys = [f"{_PERIOD_START[time]} AS {ident(period)}"] if period else []
    groups = [_PERIOD_START[time]] if period else []
    keys += [ident(g) for g in grain]
    groups += [ident(g) for g in grain]
    text = f"SELECT {', '.join([*keys, _select(measures)])} FROM enriched"
    if groups:
        text += f" GROUP BY {', '.join(groups)}"
    order = (*([period] if period else []), *grain)
    return _render(text, order, enriched, dialect=dialect, scales=scales)


def _render(text: str, order_by: tuple[str, ...], enriched: str, *, dialect: str, scales: Scales) -> str:
    casts = _casts(scales)
    query = sqlglot.parse_one(text.replace("{avg_basket}", _avg_basket(scales)), dialect="duckdb")
    query = query.transform(
        lambda node: exp.to_table(enriched) if isinstance(node, exp.Table) and node.name == "enriched" else node
    )
    outer = exp.select(
        *[
            exp.cast(exp.column(col, quoted=True), to).as_(exp.to_identifier(col, quoted=True))
            if (to := casts.get(col)) else exp.column(col, quoted=True)
            for col in _output_columns(query)
        ]
    ).from_(query.subquery("m"))
    if order_by:
        outer = outer.order_by(*(exp.column(c, quoted=True) for c in order_by))
    return outer.sql(dialect=dialect)


def _output_columns(query: exp.Query) -> list[str]:
    return [s.alias_or_name for s in query.selects]
