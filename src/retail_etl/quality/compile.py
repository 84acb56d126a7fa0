"""Compile parsed DQDL rules (:mod:`retail_etl.quality.dqdl`) into sqlglot expressions.

Rules name canonical columns (:mod:`retail_etl.model`); their canonical types decide how
operands are typed: on DATE/TIMESTAMP columns string operands and ``now()`` are cast to
the column's type, on text columns number operands become strings. User values only
ever become sqlglot literals, and every expression renders for DuckDB and Spark SQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from retail_etl.errors import ConfigError, RuleSyntaxError
from retail_etl.model import ENTITIES, LINEAGE_COLUMNS
from retail_etl.quality.dqdl import (
    ColumnLength,
    ColumnValues,
    Condition,
    CustomSql,
    IsComplete,
    IsUnique,
    ReferentialIntegrity,
    RowCount,
    Rule,
    Value,
)
from retail_etl.quality.source_columns import with_source_columns

_TYPES: dict[str, exp.DataType] = {
    name: exp.DataType.build(type_)
    for name, type_ in [*((c.name, c.type) for e in ENTITIES.values() for c in e.columns), *LINEAGE_COLUMNS]
}
_TEMPORAL = {exp.DataType.Type.DATE, exp.DataType.Type.TIMESTAMP}
_COMPARISONS: dict[str, type[exp.Binary]] = {
    "=": exp.EQ,
    "!=": exp.NEQ,
    ">": exp.GT,
    ">=": exp.GTE,
    "<": exp.LT,
    "<=": exp.LTE,
}


def _col(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def _is_text(type_: exp.DataType | None) -> bool:
    return type_ is not None and type_.is_type(*exp.DataType.TEXT_TYPES)


def _as_text(column: str) -> exp.Expression:
    return _col(column) if _is_text(_TYPES.get(column)) else exp.cast(_col(column), "VARCHAR")


def _operand(value: Value, type_: exp.DataType | None) -> exp.Expression:
    temporal = type_ is not None and type_.this in _TEMPORAL
    if isinstance(value, Decimal):
        text = format(value, "f")
        return exp.Literal.string(text) if _is_text(type_) else exp.Literal.number(text)
    if isinstance(value, str):
        literal = exp.Literal.string(value)
        return exp.cast(literal, type_) if temporal else literal
    now: exp.Expression = exp.CurrentTimestamp()
    if value.amount:
        unit = exp.Var(this=value.unit.rstrip("s").upper())
        interval = exp.Interval(this=exp.Literal.string(str(abs(value.amount))), unit=unit)
        now = (exp.Add if value.amount > 0 else exp.Sub)(this=now, expression=interval)
    return exp.cast(now, type_) if temporal else now


def _condition(subject: exp.Expression, cond: Condition, type_: exp.DataType | None) -> exp.Expression:
    """``subject <cond>``; never NULL for a non-NULL subject."""
    if cond.op == "matches":
        pattern = exp.Literal.string(f"^(?:{cond.operands[0]})$")
        return exp.RegexpLike(this=subject, expression=pattern)
    values = [_operand(v, type_) for v in cond.operands]
    if cond.op == "between":
        return exp.Between(this=subject, low=values[0], high=values[1])
    if cond.op == "in":
        return exp.In(this=subject, expressions=values)
    if cond.op == "not in":
        return exp.not_(exp.In(this=subject, expressions=values))
    return _COMPARISONS[cond.op](this=subject, expression=values[0])


def _relation(rule: Rule, table: str, tables: Mapping[str, str]) -> exp.Table:
    if table not in tables:
        known = ", ".join(sorted(tables)) or "none"
        raise ConfigError(f"rule {rule.text!r} references unknown table {table!r}", hint=f"known tables: {known}")
    return exp.to_table(tables[table])


def _ri_match(rule: ReferentialIntegrity, tables: Mapping[str, str]) -> exp.Expression:
    ref = exp.column(rule.ref_column, table="_ref", quoted=True)
    lookup = exp.select(ref).from_(_relation(rule, rule.ref_table, tables).as_("_ref")).where(ref.is_(exp.null()).not_())
    return _col(rule.column).isin(query=lookup)


def row_check(rule: Rule, *, tables: Mapping[str, str], order_by: Sequence[exp.Expression] = ()) -> exp.Expression:
    """A boolean expression, TRUE when a row passes ``rule`` and never NULL.

    - IsComplete fails NULL and, for text (or untyped) columns, blank strings.
    - ColumnValues, ColumnLength and ReferentialIntegrity let NULL pass (completeness is
      IsComplete's job). ``matches`` must match the whole value (text of the value).
    - ReferentialIntegrity: the value is among the non-NULL ``ref_column`` values of the
      relation ``tables[ref_table]``; an unknown table is a :class:`ConfigError`.
    - IsUnique: the first row of each key in ``order_by`` order passes, later duplicates
      fail, rows with a NULL key column pass. It is a window expression: use it in a
      SELECT list, not in WHERE.
    Dataset-level rules (RowCount, CustomSql) have no row check: ValueError.
    """
    match rule:
        case IsComplete(column=column):
            present = _col(column).is_(exp.null()).not_()
            if column in _TYPES and not _is_text(_TYPES[column]):
                return present
            return exp.and_(present, exp.NEQ(this=exp.Trim(this=_as_text(column)), expression=exp.Literal.string("")))
        case IsUnique(keys=keys):
            if not order_by:
                raise ValueError("IsUnique needs order_by to decide which duplicate comes first")
            window = exp.Window(
                this=exp.RowNumber(),
                partition_by=[_col(k) for k in keys],
                order=exp.Order(expressions=[e.copy() for e in order_by]),
            )
            null_key = exp.or_(*(_col(k).is_(exp.null()) for k in keys))
            return exp.or_(null_key, exp.EQ(this=window, expression=exp.Literal.number(1)))
        case ColumnValues(column=column, condition=cond):
            subject = _as_text(column) if cond.op == "matches" else _col(column)
            check = _condition(subject, cond, _TYPES.get(column))
        case ColumnLength(column=column, condition=cond):
            check = _condition(exp.Length(this=_as_text(column)), cond, None)
        case ReferentialIntegrity(column=column):
            check = _ri_match(rule, tables)
        case _:
            raise ValueError(f"{rule.kind} is a dataset-level rule without a row check")
    return exp.or_(_col(column).is_(exp.null()), check)


def _value_text(column: str) -> exp.Expression:
    if _is_text(_TYPES.get(column)):
        return exp.Concat(expressions=[exp.Literal.string("'"), _col(column), exp.Literal.string("'")])
    return exp.cast(_col(column), "VARCHAR")


def _concat(*parts: str | exp.Expression) -> exp.Expression:
    return exp.Concat(expressions=[exp.Literal.string(p) if isinstance(p, str) else p for p in parts])


def _must(cond: Condition) -> str:
    text = str(cond)
    if cond.op == "matches":
        return "must match" + text.removeprefix("matches")
    if cond.op == "not in":
        return "must not be" + text.removeprefix("not")
    return f"must be {text}"


def failure_message(rule: Rule) -> exp.Expression:
    """A VARCHAR expression: why a row failed ``rule``, with the offending value.

    Only meaningful on failing rows (whose values are not NULL, except for IsComplete).
    """
    match rule:
        case IsComplete(column=column):
            return exp.Literal.string(f"{column} is missing")
        case IsUnique(keys=keys):
            parts: list[str | exp.Expression] = [f"{'+'.join(keys)} duplicates an earlier row: "]
            for i, key in enumerate(keys):
                parts += [", ", _value_text(key)] if i else [_value_text(key)]
            return _concat(*parts)
        case ColumnValues(column=column, condition=cond):
            return _concat(f"{column} {_must(cond)}, got ", _value_text(column))
        case ColumnLength(column=column, condition=cond):
            length = exp.cast(exp.Length(this=_as_text(column)), "VARCHAR")
            return _concat(f"{column} length {_must(cond)}, got ", length, " (", _value_text(column), ")")
        case ReferentialIntegrity(column=column, ref_table=table, ref_column=ref_column):
            return _concat(f"{column} ", _value_text(column), f" not found in {table}.{ref_column}")
    raise ValueError(f"{rule.kind} is a dataset-level rule without row messages")


def _custom_query(rule: CustomSql, relation: str, tables: Mapping[str, str]) -> exp.Select:
    try:
        statements = sqlglot.parse(rule.sql, read="duckdb")
    except SqlglotError as e:
        raise RuleSyntaxError(f"rule {rule.text!r}: the CustomSql query is not valid SQL: {e}") from None
    query = statements[0] if len(statements) == 1 else None
    if not isinstance(query, exp.Select) or len(query.expressions) != 1 or query.is_star:
        raise RuleSyntaxError(
            f"rule {rule.text!r}: the CustomSql query must be a single SELECT returning one number",
            hint='e.g. CustomSql "SELECT COUNT(*) FROM primary WHERE quantity = 0" = 0',
        )
    query, _ = with_source_columns(query)
    names = {name.lower(): target for name, target in {**tables, "primary": relation}.items()}
    for table in list(query.find_all(exp.Table)):
        target = None if table.db else names.get(table.name.lower())
        if target is not None:
            alias = exp.to_identifier(table.alias or table.name, quoted=True)
            table.replace(exp.to_table(target).as_(alias))
    return query


def dataset_metric(rule: Rule, *, relation: str, tables: Mapping[str, str]) -> exp.Select:
    """A query over ``relation`` returning the one number that ``dataset_passes`` judges.

    RowCount: the row count. CustomSql: the user's query, with the table ``primary``
    replaced by ``relation``, names in ``tables`` by their relations and ``source."<column>"``
    by the column validation carries for it (:func:`retail_etl.quality.source_columns.carried_column`).
    ReferentialIntegrity: the share of non-NULL values found in the reference table.
    Other rules: the share of rows passing :func:`row_check` (IsUnique: first occurrences
    and NULL keys over all rows). Shares of an empty relation are 1.0.
    """
    source = exp.to_table(relation)
    match rule:
        case RowCount():
            return exp.select(exp.Count(this=exp.Star())).from_(source)
        case CustomSql():
            return _custom_query(rule, relation, tables)
        case ReferentialIntegrity(column=column):
            return exp.select(_share(_ri_match(rule, tables))).from_(source).where(_col(column).is_(exp.null()).not_())
    order_by = [_col(c) for c in rule.columns]
    checks = exp.select(row_check(rule, tables=tables, order_by=order_by).as_("ok")).from_(source).subquery("_rows")
    return exp.select(_share(exp.column("ok", table="_rows"))).from_(checks)


def _share(condition: exp.Expression) -> exp.Expression:
    case = exp.Case().when(condition, exp.Literal.number("1.0")).else_(exp.Literal.number("0.0"))
    return exp.Coalesce(this=exp.Avg(this=case), expressions=[exp.Literal.number("1.0")])


def dataset_passes(rule: Rule, value: float | None) -> bool:
    """Whether the result of :func:`dataset_metric` passes ``rule``; a NULL result fails.

    RowCount, CustomSql and ReferentialIntegrity apply their condition; other rules pass
    only when every row passes (a share of 1.0).
    """
    if value is None:
        return False
    if isinstance(rule, RowCount | CustomSql | ReferentialIntegrity):
        return rule.condition.check(value)
    return value >= 1
