"""From a source's raw text columns to the canonical model, as sqlglot expressions (pure, no I/O).

Each canonical column gets one expression over the raw columns (all VARCHAR):
- mapped text columns are trimmed, case-folded and value-mapped as the source declares;
- mapped numbers honour the decimal and thousands separators, then ``TRY_CAST``;
- mapped dates and timestamps use the declared strftime format (``TRY_STRPTIME``) or ISO;
- derived columns are the user's SQL over canonical names, and canonical derivations and defaults
  (e.g. ``sale_date = CAST(sold_at AS DATE)``, a discount from a discount rate) fill what the source
  does not give;
- money is read at the source's scale (``money.scale``) and typed at the table's (:class:`Scales`,
  the widest of the sales sources), so that every source writes the same column types;
- a blank mapped value takes the source's ``defaults`` entry for that column, if any
  (and a blank discount is 0).
Derived expressions are inlined, so the whole projection is a single SELECT.
A mapped value that is present but does not parse is reported by :func:`parse_failures`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

from retail_etl.config.model import AttributeSpec, ColumnSpec, SourceConfig
from retail_etl.errors import ConfigError, did_you_mean
from retail_etl.model import (
    ENTITIES,
    RATE_SCALE,
    CanonicalColumn,
    QUANTITY,
    QUANTITY_OPERAND,
    Entity,
    Scales,
    amount_type,
    price_type,
    typed,
)
from retail_etl.quality.source_columns import SOURCE_NAMESPACE, is_source_ref, with_source_columns
from retail_etl.quoting import literal

NUMERIC_PREFIXES = ("DECIMAL", "INTEGER", "BIGINT", "DOUBLE")


class MappingError(ConfigError):
    """A mapping problem; ``path`` is the config key path below the source."""


@dataclass(frozen=True)
class ParseCheck:
    """A mapped, typed column: present in the source but not parseable means the row is quarantined."""

    column: str
    source_column: str  # as the message names it
    type: str
    formats: tuple[str, ...]
    parsed: exp.Expression  # the parse alone, before any default fills a blank
    text: exp.Expression  # the source text the parse reads (blank: nothing to parse)


@dataclass(frozen=True)
class RangeCheck:
    """A derived column: a value that its column type cannot hold means the row is quarantined."""

    column: str
    type: str
    value: exp.Expression  # the formula before it is typed


@dataclass(frozen=True)
class SourcePlan:
    """Everything needed to turn a batch of raw rows of one source into canonical rows."""

    name: str
    entity: Entity
    columns: dict[str, exp.Expression]  # canonical name -> typed expression over raw columns
    raw_columns: tuple[str, ...]  # source columns the mapping reads (must exist in every file)
    parse_checks: tuple[ParseCheck, ...]
    range_checks: tuple[RangeCheck, ...] = ()
    carried: tuple[str, ...] = ()  # source columns CustomSql rules read (see :func:`carried_column`)

    def projection(self) -> list[exp.Expression]:
        """``expr AS canonical_name`` for every canonical column, in model order."""
        return [exp.alias_(self.columns[c.name], c.name, quoted=True) for c in self.entity.columns]


def raw_col(name: str) -> exp.Column:
    """A quoted reference to a raw (source) column."""
    return exp.column(name, quoted=True)


def rate_on_gross(source: SourceConfig) -> bool:
    """Whether the source's discount is its discount rate times the line before discount."""
    given = _given(source)
    return {"discount_rate", "unit_price"} <= given and "discount_amount" not in given


def money_scales(sources: Iterable[SourceConfig]) -> Scales:
    """The money scales of the sales tables fed by ``sources`` (the sales ones count)."""
    return Scales.of((s.money.scale, rate_on_gross(s)) for s in sources if s.entity == "sales")


def _given(source: SourceConfig) -> set[str]:
    return {*source.columns, *source.derived, *source.defaults}


def plan_source(name: str, source: SourceConfig, scales: Scales | None = None) -> SourcePlan:
    """Build and check the canonical projection of ``source``; raises :class:`MappingError`.

    ``scales`` types the money columns (default: the source's own, as if it fed the tables alone).
    """
    entity = typed(ENTITIES[source.entity], scales or money_scales([source]))
    canonical = entity.names
    known = set(canonical)
    for section in ("columns", "derived", "defaults", "standardize"):
        for key in getattr(source, section):
            if key not in known:
                raise MappingError(
                    f"{key!r} is not a column of the canonical {entity.name} model",
                    (section, key),
                    hint=did_you_mean(key, canonical) + f"canonical columns: {', '.join(canonical)}"
                    + (" (an extra source column is declared under attributes)" if section == "columns" else ""),
                )
    for key in source.derived:
        if key in source.columns:
            raise MappingError(f"{key!r} is both mapped and derived; keep one", ("derived", key))
    entity = _with_attributes(entity, source)
    known = set(entity.names)

    base: dict[str, exp.Expression] = {}
    checks: list[ParseCheck] = []
    attributes = source.attribute_specs()
    for col in entity.columns:
        spec = source.column_spec(col.name) if col.name in canonical else _attribute_column(attributes[col.name])
        if spec is not None:
            read_as = _read_type(col.name, col.kind, col.type, source)
            text = _source_text(spec, col.name)
            parsed = _parse_expr(text, col.name, read_as, spec.formats, source)
            if col.name == "discount_rate" and source.money.discount_rate == "percent":
                parsed = exp.Mul(this=parsed, expression=exp.cast(exp.Literal.number("0.01"), "DECIMAL(3,2)"))
            if read_as != col.type:  # exp.cast would keep a DECIMAL as it is, whatever its scale
                parsed = exp.Cast(this=parsed, to=exp.DataType.build(col.type))
            fill = source.defaults.get(col.name, col.blank_value)
            # A blank value takes the declared default.
            base[col.name] = (
                parsed if fill is None else exp.Coalesce(this=parsed.copy(), expressions=[exp.cast(literal(fill), col.type)])
            )
            if col.type != "VARCHAR":
                checks.append(ParseCheck(col.name, " + ".join(spec.source_columns), col.type, spec.formats,
                                         parsed.copy(), text.copy()))
        elif col.name in source.defaults:
            base[col.name] = exp.cast(literal(source.defaults[col.name]), col.type)

    given = _given(source)
    formulas: dict[str, exp.Expression] = {}
    for col in entity.columns:
        if col.name in base:
            continue
        derivation = next((d.expr for d in col.derivations if set(d.needs) <= given), None)
        text = source.derived.get(col.name) or derivation or col.default_expr
        if text is None:
            continue
        where = ("derived", col.name) if col.name in source.derived else ("columns",)
        formulas[col.name] = _parse_formula(text, where, known)
    source_refs = [c.name for f in formulas.values() for c in f.find_all(exp.Column, bfs=False) if is_source_ref(c)]

    resolved, ranges = _resolve(base, formulas, entity)
    for col in entity.columns:
        if col.name not in resolved:
            if col.required:
                raise MappingError(
                    f"required canonical column {col.name!r} is not mapped, derived or defaulted",
                    ("columns", col.name),
                    hint=f"add `{col.name}: <source column>` under columns",
                )
            resolved[col.name] = exp.cast(exp.null(), col.type)
    for group in entity.one_of:
        if not any(g in source.columns or g in source.derived or g in source.defaults for g in group):
            raise MappingError(
                f"map at least one of {', '.join(group)} (the others are derived from it)", ("columns",)
            )
    for key in source.key or ():
        if key not in known:
            raise MappingError(f"key column {key!r} is not canonical", ("key",), hint=did_you_mean(key, entity.names))

    mapped = (source.column_spec(c) for c in source.columns)
    raw = tuple(dict.fromkeys([*(c for spec in mapped if spec for c in spec.source_columns),
                               *(a.column for a in attributes.values()), *source_refs]))
    carried = custom_sql_source_columns(source)
    raw = tuple(dict.fromkeys([*raw, *carried]))
    return SourcePlan(name, entity, resolved, raw, tuple(checks), tuple(ranges), carried)


def attribute_columns(sources: Iterable[SourceConfig]) -> list[tuple[str, str]]:
    """(name, SQL type) of the attributes ``sources`` declare, each once, in declaration order."""
    out: dict[str, str] = {}
    for source in sources:
        for name, spec in source.attribute_specs().items():
            out.setdefault(name, spec.type)
    return list(out.items())


def _with_attributes(entity: Entity, source: SourceConfig) -> Entity:
    """``entity`` with the source's declared attributes as extra columns."""
    taken = {*entity.names, "source", "source_file", "source_line", "run_id"}
    extra = []
    for name, spec in source.attribute_specs().items():
        if name in taken or name.startswith("_"):
            raise MappingError(
                f"attribute {name!r} clashes with a column of the {entity.name} tables", ("attributes", name),
                hint="map a canonical column under columns, or give the attribute another name")
        extra.append(CanonicalColumn(name, spec.type, description=f"attribute from source column {spec.column!r}"))
    return replace(entity, columns=(*entity.columns, *extra)) if extra else entity


def _attribute_column(spec: AttributeSpec) -> ColumnSpec:
    return ColumnSpec(column=spec.column, format=spec.format)


def parse_failures(plan: SourcePlan) -> list[tuple[str, exp.Expression, exp.Expression]]:
    """``(check_id, passes, message)`` for each typed mapped column: text present but not parseable fails."""
    out = []
    for check in plan.parse_checks:
        raw = check.text
        present = exp.and_(exp.not_(raw.is_(exp.null())), exp.NEQ(this=exp.Trim(this=raw), expression=exp.Literal.string("")))
        parsed_ok = exp.not_(check.parsed.copy().is_(exp.null()))
        passes = exp.or_(exp.not_(exp.paren(present)), exp.paren(parsed_ok))
        expected = (f"a date/time in format {' or '.join(check.formats)}" if check.formats
                    else _type_words(check.type))
        message = exp.Concat(
            expressions=[
                exp.Literal.string(f"{check.column}: '"),
                raw.copy(),
                exp.Literal.string(f"' is not {expected} (source column {check.source_column})"),
            ]
        )
        out.append((f"Parse.{check.column}", passes, message))
    for check in plan.range_checks:
        fits = _fits(check.value, check.type)
        passes = exp.or_(check.value.copy().is_(exp.null()), exp.paren(fits))
        message = exp.Literal.string(f"{check.column} overflows {check.type}")
        out.append((f"Range.{check.column}", passes, message))
    return out


def _read_type(name: str, kind: str | None, table_type: str, source: SourceConfig) -> str:
    """The type a mapped value is read as: money at the source's own scale, a percentage with two
    more places than the fraction it becomes."""
    if kind == "amount":
        return amount_type(source.money.scale)
    if kind == "price":
        return price_type(source.money.scale)
    if name == "discount_rate" and source.money.discount_rate == "percent":
        return f"DECIMAL(18,{RATE_SCALE - 2})"
    return table_type


def _type_words(sql_type: str) -> str:
    if sql_type.startswith(("INTEGER", "BIGINT")):
        return f"a whole number that fits {sql_type}"
    if sql_type.startswith(NUMERIC_PREFIXES):
        return f"a number that fits {sql_type} (scientific notation only with csv.exponent: true)"
    if sql_type == "DATE":
        return "an ISO date (YYYY-MM-DD); set a format for this column"
    if sql_type == "TIMESTAMP":
        return "an ISO timestamp; set a format for this column"
    return f"a valid {sql_type}"


def _source_text(spec: ColumnSpec, name: str) -> exp.Expression:
    """The source text a mapped column reads: its column, or date and time joined by a space,
    through the mapping's ``expr`` over ``value`` if it has one."""
    if spec.column is not None:
        text: exp.Expression = raw_col(spec.column)
    else:
        date = exp.DPipe(this=exp.Trim(this=raw_col(spec.date or "")), expression=exp.Literal.string(" "))
        text = exp.DPipe(this=date, expression=exp.Trim(this=raw_col(spec.time or "")))
    if spec.expr is None:
        return text
    where = ("columns", name, "expr")
    expr = _parse_scalar(spec.expr, where, "a column's expr is computed from its source text, e.g. upper(value)")
    for col in expr.find_all(exp.Column):
        if col.table or col.name != "value":
            raise MappingError(f"expr {spec.expr!r} uses {col.sql()!r}; it can use only value (the source text)",
                               where, hint="write the expression over value, e.g. regexp_replace(value, '\\.0$', '')")
    trimmed = exp.Trim(this=text)
    return exp.paren(expr.transform(lambda n: trimmed.copy() if isinstance(n, exp.Column) else n))


def _parse_expr(
    raw: exp.Expression, name: str, sql_type: str, formats: tuple[str, ...], source: SourceConfig
) -> exp.Expression:
    text = exp.Trim(this=raw)
    if sql_type == "VARCHAR":
        value: exp.Expression = exp.Nullif(this=text, expression=exp.Literal.string(""))
        std = source.standardize.get(name)
        if std and std.case:
            value = (exp.Upper if std.case == "upper" else exp.Lower)(this=value)
        if std and std.values:
            value = exp.Case(
                ifs=[
                    exp.If(this=exp.EQ(this=value.copy(), expression=exp.Literal.string(k)), true=exp.Literal.string(v))
                    for k, v in std.values.items()
                ],
                default=value.copy(),
            )
        return value
    if sql_type.startswith(NUMERIC_PREFIXES):
        csv = source.csv
        num: exp.Expression = text
        if csv.thousands_separator:
            num = exp.func("REPLACE", num, exp.Literal.string(csv.thousands_separator), exp.Literal.string(""))
        if csv.decimal_separator != ".":
            num = exp.func("REPLACE", num, exp.Literal.string(csv.decimal_separator), exp.Literal.string("."))
        return _checked_number(num, sql_type, exponent=csv.exponent)
    if sql_type in ("DATE", "TIMESTAMP"):
        if formats:
            cls = exp.StrToDate if sql_type == "DATE" else exp.StrToTime
            tries = [cls(this=text.copy(), format=exp.Literal.string(f), safe=True) for f in formats]
            return tries[0] if len(tries) == 1 else exp.Coalesce(this=tries[0], expressions=tries[1:])
        return exp.TryCast(this=text, to=exp.DataType.build(sql_type))
    raise MappingError(f"unsupported canonical type {sql_type}", ("columns", name))


_INTEGER_TEXT = r"^[+-]?[0-9]+$"
_DECIMAL_TEXT = r"^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)$"
_EXPONENT_TEXT = r"^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)?$"
#: Wide enough to hold exactly any number a DECIMAL column of the model can hold, and more places.
_EXACT = "DECIMAL(38,18)"


def _checked_number(num: exp.Expression, sql_type: str, *, exponent: bool) -> exp.Expression:
    """``num`` (text with a ``.`` decimal point and no thousands separator) as ``sql_type``, or NULL
    when it is not written in the source's number format: an integer column takes digits only (no
    ``1.5``), no format takes ``_`` between digits, scientific notation only where the source
    declares ``exponent: true``, and then only a value the column holds exactly (``1e-7`` is not
    0.0000)."""
    to = exp.DataType.build(sql_type)
    integer = to.is_type(*exp.DataType.INTEGER_TYPES)
    pattern = _INTEGER_TEXT if integer else _EXPONENT_TEXT if exponent else _DECIMAL_TEXT
    ok: exp.Expression = exp.RegexpLike(this=num.copy(), expression=exp.Literal.string(pattern))
    typed_value = exp.TryCast(this=num.copy(), to=to)
    if exponent and to.is_type(exp.DataType.Type.DECIMAL):
        exact = exp.TryCast(this=num.copy(), to=exp.DataType.build(_EXACT))
        ok = exp.and_(ok, exp.EQ(this=typed_value.copy(), expression=exact))
    return exp.Case(ifs=[exp.If(this=ok, true=typed_value)])


def _fits(value: exp.Expression, sql_type: str) -> exp.Expression | None:
    """A condition true when ``value`` rounds into ``sql_type`` (a DECIMAL) without overflow;
    None for other types."""
    to = exp.DataType.build(sql_type)
    if not to.is_type(exp.DataType.Type.DECIMAL) or len(to.expressions) != 2:
        return None
    precision, scale = (int(e.name) for e in to.expressions)
    # Rounding half away from zero: |v| < 10^(p-s) - 0.5 * 10^-s keeps p digits.
    integer_digits = "9" * (precision - scale) or "0"
    bound = f"{integer_digits}.{'9' * scale}5" if scale else f"{integer_digits}.5"
    return exp.LT(this=exp.Abs(this=value.copy()), expression=exp.Literal.number(bound))


def source_value(column: str) -> exp.Expression:
    """What ``source."<column>"`` stands for: the source column's text, trimmed, NULL when blank."""
    return exp.Nullif(this=exp.Trim(this=raw_col(column)), expression=exp.Literal.string(""))


def custom_sql_source_columns(source: SourceConfig) -> tuple[str, ...]:
    """The source columns that ``source``'s ``CustomSql`` rules name under the ``source`` namespace
    (a rule or query that does not parse names none: its own check reports it)."""
    from retail_etl.errors import RuleSyntaxError
    from retail_etl.quality.dqdl import CustomSql, parse_rule

    named: dict[str, str] = {}
    for spec in source.rules:
        try:
            rule = parse_rule(spec.rule)
            query = sqlglot.parse_one(rule.sql, read="duckdb") if isinstance(rule, CustomSql) else None
        except (RuleSyntaxError, SqlglotError):
            continue
        if query is not None:
            for column in with_source_columns(query)[1]:
                named.setdefault(column.casefold(), column)
    return tuple(named.values())


def _parse_scalar(text: str, where: tuple[str, ...], hint: str) -> exp.Expression:
    try:
        expr = sqlglot.parse_one(text, dialect="duckdb")
    except ParseError as exc:
        raise MappingError(f"cannot parse SQL expression {text!r}: {exc.errors[0]['description']}", where) from None
    bad = expr.find(exp.Query, exp.Alias, exp.Star, exp.AggFunc, exp.Window)
    if bad is not None:
        raise MappingError(f"{text!r} is not a scalar expression (found {bad.key}: {bad.sql()!r})", where, hint=hint)
    return expr


def _parse_formula(text: str, where: tuple[str, ...], known: set[str]) -> exp.Expression:
    expr = _parse_scalar(
        text, where, "a derived column is computed from the canonical columns of one row, e.g. quantity * unit_price")
    for col in expr.find_all(exp.Column):
        if is_source_ref(col):
            continue
        if col.table or col.name not in known:
            raise MappingError(
                f"expression {text!r} uses {col.sql()!r}, which is not a canonical column",
                where,
                hint=did_you_mean(col.name, sorted(known))
                + f'derived expressions use canonical names, and {SOURCE_NAMESPACE}."<column>" for the source\'s own '
                "columns (their text, trimmed, NULL when blank)",
            )
    return expr


def _operand(name: str, value: exp.Expression, entity: Entity) -> exp.Expression:
    """A resolved column as it enters a formula: a quantity is widened (see ``QUANTITY_OPERAND``)."""
    if entity.column(name).type == QUANTITY:
        return exp.Cast(this=exp.paren(value.copy()), to=exp.DataType.build(QUANTITY_OPERAND))
    return exp.paren(value.copy())


def _inline(node: exp.Expression, resolved: dict[str, exp.Expression], entity: Entity) -> exp.Expression:
    if not isinstance(node, exp.Column):
        return node
    if is_source_ref(node):
        return source_value(node.name)
    return _operand(node.name, resolved[node.name], entity)


def _resolve(
    base: dict[str, exp.Expression], formulas: dict[str, exp.Expression], entity: Entity
) -> tuple[dict[str, exp.Expression], list[RangeCheck]]:
    """Inline formulas over already-resolved columns until all are resolved (or a cycle is found).

    A formula's value that its column's DECIMAL type cannot hold becomes NULL (never an engine
    error) and gets a :class:`RangeCheck`."""
    resolved = dict(base)
    ranges: list[RangeCheck] = []
    pending = dict(formulas)
    while pending:
        progress = False
        for name, formula in list(pending.items()):
            deps = {c.name for c in formula.find_all(exp.Column) if not is_source_ref(c)}
            if any(d not in resolved for d in deps):
                if all(d in resolved or d in pending for d in deps):
                    continue
                # A default formula that depends on a column nobody provides: the column stays unset.
                del pending[name]
                progress = True
                continue
            inlined = formula.copy().transform(lambda node: _inline(node, resolved, entity))
            col_type = entity.column(name).type
            fits = _fits(inlined, col_type)
            typed_value = exp.cast(inlined, col_type)
            if fits is not None:
                typed_value = exp.Case(ifs=[exp.If(this=fits, true=typed_value)])
                ranges.append(RangeCheck(name, col_type, inlined.copy()))
            resolved[name] = typed_value
            del pending[name]
            progress = True
        if not progress:
            raise MappingError(
                f"derived columns depend on each other in a cycle: {', '.join(sorted(pending))}",
                ("derived",),
            )
    return resolved, ranges
