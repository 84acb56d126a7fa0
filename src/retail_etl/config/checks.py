"""Semantic checks run at load time, so bad configuration fails before any data is touched.

Every check runs, and all problems are reported together (as sqlglot's ``ErrorLevel.RAISE``
collects its errors before raising): one run of ``retail-etl doctor`` or ``run`` shows everything
to fix. A problem is a message, its key path in the file and a hint.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import OptimizeError, SqlglotError

from retail_etl.config.model import Config, SourceConfig
from retail_etl.errors import ConfigError, MissingExtraError, did_you_mean
from retail_etl.model import ENTITIES, REFERENCE_KEYS

if TYPE_CHECKING:
    from retail_etl.sources.mapping import SourcePlan

# Directives DuckDB's strptime accepts (checked against DuckDB 2.0.1); Spark takes fewer (engines.sql).
DUCKDB_DIRECTIVES = frozenset("aAbBcdfgGHIjmMnpSuUVwWxXyYzZT%h")
PRIMARY = "primary"
#: A reference entity's key is the column facts join it on: its repeats would multiply them.
_LINEAGE = ("source_file", "source_line")


@dataclass(frozen=True)
class Problem:
    message: str
    path: tuple[str, ...]
    hint: str | None = None


def check_config(config: Config, file: Path, lines: Mapping[tuple[str, ...], int]) -> None:
    """Run every check; raise one :class:`ConfigError` listing all problems with ``file:line: key``."""
    from retail_etl.config.loader import locate

    problems = list(config_problems(config))
    if not problems:
        return
    if len(problems) == 1:
        (p,) = problems
        raise ConfigError(p.message, location=locate(file, lines, p.path), hint=p.hint)
    text = "\n".join(
        f"{locate(file, lines, p.path)}: {p.message}" + (f" (hint: {p.hint})" if p.hint else "") for p in problems
    )
    raise ConfigError(f"{len(problems)} problems in the configuration:\n{text}",
                      hint="fix them all, then run again (`retail-etl doctor` checks without running)")


def config_problems(config: Config) -> Iterator[Problem]:
    """Every problem found in ``config`` without reading any data."""
    from retail_etl.quality.ruleset import RuleConfigError, source_rules
    from retail_etl.sources.mapping import MappingError, plan_source

    if not config.sources:
        yield Problem("declare at least one source", ("sources",))
    if len(config.sources_of("products")) > 1:
        yield Problem("declare at most one products source", ("sources",))
    for name, source in config.sources.items():
        where = ("sources", name)
        provided: set[str] | None = None
        try:
            provided = provided_columns(plan_source(name, source))
        except MappingError as exc:
            yield Problem(exc.message, (*where, *exc.path), exc.hint)
        yield from (Problem(p.message, (*where, *p.path), p.hint) for p in _format_problems(source, config))
        if provided is not None:
            yield from (Problem(p.message, (*where, *p.path), p.hint) for p in _named_problems(source, provided))
        try:
            rules = source_rules(source)
        except RuleConfigError as exc:
            yield Problem(exc.message, (*where, *exc.path), exc.hint)
            continue
        for index, rule in enumerate(rules):
            rule_path = (*where, "rules", str(index))
            if provided is not None:
                for column in rule.rule.columns:
                    if column not in provided:
                        yield Problem(
                            f"rule {rule.rule.text!r} uses {column!r}, which this source does not map, derive or "
                            "default: the rule would see NULL on every row", rule_path,
                            f"map {column!r} under sources.{name}.columns, or remove the rule")
            table = getattr(rule.rule, "ref_table", None)
            if table is not None and not config.sources_of(table):
                yield Problem(f"rule {rule.rule.text!r} refers to {table!r}, but no source has entity: {table}",
                              rule_path, "declare the reference source (e.g. products) or remove the rule")
            elif table in ENTITIES and rule.rule.ref_column not in ENTITIES[table].names:
                ref_names = ENTITIES[table].names
                yield Problem(f"rule {rule.rule.text!r} refers to {table}.{rule.rule.ref_column}, which is not a "
                              f"canonical {table} column", rule_path,
                              did_you_mean(rule.rule.ref_column, ref_names) + f"{table} has {', '.join(ref_names)}")
            sql = getattr(rule.rule, "sql", None)
            if sql is not None:
                for message, hint in custom_sql_problems(sql, source, config):
                    yield Problem(f"rule {rule.rule.text!r}: {message}", rule_path, hint)
    yield from marts_problems(config)
    yield from extras_problems(config)


# -- what the configuration names: key columns, derived columns' inputs ----------------------------


def provided_columns(plan: SourcePlan) -> set[str]:
    """Canonical columns the source gives a value: mapped, derived or defaulted, directly or through
    a canonical default formula whose inputs it gives (the others are NULL on every row)."""
    return {name for name, expr in plan.columns.items()
            if not (isinstance(expr, exp.Cast) and isinstance(expr.this, exp.Null))}


def _named_problems(source: SourceConfig, provided: set[str]) -> Iterator[Problem]:
    names = ENTITIES[source.entity].names
    for index, column in enumerate(source.key or ()):
        if column in names and column not in provided:
            yield Problem(
                f"key column {column!r} is not mapped, derived or defaulted: it would be NULL on every line, "
                "and lines with a NULL key column are never de-duplicated",
                ("key", str(index)),
                f"map {column!r} under columns, or remove it from key "
                f"(given: {', '.join(sorted(provided & set(names)))})")
    join_key = REFERENCE_KEYS.get(source.entity)
    if join_key and source.key is not None and tuple(source.key) != join_key:
        yield Problem(
            f"the {source.entity} reference is joined on {', '.join(join_key)}, so that is its key; "
            f"key: [{', '.join(source.key)}] would let one {join_key[0]} match a sales line several times",
            ("key",), f"write key: [{', '.join(join_key)}] (or leave key out: it is the default)")
    if source.key is None and "key_wins" in source.model_fields_set and not join_key:
        yield Problem("key_wins has no effect without a key", ("key_wins",),
                      "declare key: [...] (the columns that make a row unique), or remove key_wins")
    for column, formula in source.derived.items():
        if column in provided:
            continue
        try:
            used = {c.name for c in sqlglot.parse_one(formula, read="duckdb").find_all(exp.Column) if not c.table}
        except SqlglotError:
            continue  # the mapping reports unparsable SQL with its own message
        missing = sorted(c for c in used if c in names and c not in provided)
        if missing:
            yield Problem(
                f"derived column {column!r} uses {', '.join(map(repr, missing))}, which this source does not "
                f"map, derive or default: {column!r} would be NULL on every row",
                ("derived", column), f"map {missing[0]!r} under columns, or write {column!r} over other columns")


# -- date and timestamp formats -------------------------------------------------------------------


def _format_problems(source: SourceConfig, config: Config) -> Iterator[Problem]:
    for canonical, spec in source.columns.items():
        for fmt in getattr(spec, "formats", ()):
            yield from _one_format_problems(fmt, ("columns", canonical, "format"), config)


def _one_format_problems(fmt: str, path: tuple[str, ...], config: Config) -> Iterator[Problem]:
    bad = [d for d in re.findall(r"%-?(.)", fmt) if d not in DUCKDB_DIRECTIVES]
    if bad:
        yield Problem(f"date format {fmt!r}: %{bad[0]} is not a strptime directive",
                      path, "use directives such as %Y %m %d %H %M %S %f (see DuckDB's strptime)")
    elif config.engine.name == "spark":
        from retail_etl.engines.sql import strptime_pattern

        try:
            strptime_pattern(fmt)
        except ConfigError as exc:
            yield Problem(exc.message, path, exc.hint)


# -- CustomSql: a single SELECT over `primary` (and the reference tables) and known columns -------


def custom_sql_problems(sql: str, source: SourceConfig, config: Config) -> list[tuple[str, str]]:
    """``(message, hint)`` for each table or column of a ``CustomSql`` query that the run would not
    have: the query sees ``primary`` (the source's canonical rows with ``source_file`` and
    ``source_line``, and ``source."<column>"``, the text of a source column) and, for sales,
    ``products`` when a products source is declared."""
    from sqlglot.optimizer.qualify import qualify

    from retail_etl.quality.source_columns import carried_column, with_source_columns

    schema = _custom_sql_schema(source, config)
    try:
        query = sqlglot.parse_one(sql, read="duckdb")
    except SqlglotError:
        return []  # the rule compiler reports unparsable SQL with its own message
    query, named = with_source_columns(query)
    schema[PRIMARY].update({carried_column(c): "VARCHAR" for c in named})
    ctes = {cte.alias_or_name.lower() for cte in query.find_all(exp.CTE)}
    problems = []
    for table in query.find_all(exp.Table):
        name = table.name.lower()
        if name in ctes:
            continue
        if table.db or name not in schema:
            full = ".".join(p for p in (table.db, table.name) if p)
            problems.append((
                f"the query reads {full!r}, which a CustomSql rule cannot read",
                did_you_mean(name, list(schema)) + f"it may read {', '.join(sorted(schema))}",
            ))
    if problems:
        return problems
    try:
        qualify(query, schema=schema, dialect="duckdb", validate_qualify_columns=True,
                quote_identifiers=False)
    except OptimizeError as exc:
        column = re.search(r"Column '([^']+)'", str(exc))
        name = column.group(1) if column else None
        names = sorted({c for cols in schema.values() for c in cols})
        what = f"column {name!r} is not in its tables" if name else f"the query does not resolve: {exc}"
        problems.append((what, (did_you_mean(name, names) if name else "")
                         + f"{PRIMARY} has the canonical {source.entity} columns and {', '.join(_LINEAGE)}; "
                         'source."<column>" is a column of the file'))
    return problems


def _custom_sql_schema(source: SourceConfig, config: Config) -> dict[str, dict[str, str]]:
    entity = ENTITIES[source.entity]
    schema = {PRIMARY: {**{c.name: c.type for c in entity.columns},
                        **{n: a.type for n, a in source.attribute_specs().items()},
                        "source_file": "VARCHAR", "source_line": "BIGINT"}}
    if source.entity == "sales" and config.sources_of("products"):
        schema["products"] = {c.name: c.type for c in ENTITIES["products"].columns}
    return schema


# -- declared marts: names, grain columns and measures ---------------------------------------------

#: Tables of the lake a declared mart may not replace.
_LAKE_TABLES = ("sales_validated", "sales_enriched", "sales_quarantine", "products", "products_quarantine",
                "quality_runs", "quality_metrics")
_TABLE_NAME = re.compile(r"[a-z][a-z0-9_]*")


def marts_problems(config: Config) -> Iterator[Problem]:
    """A declared mart with an unusable table name, an unknown grain column or an unknown measure."""
    from retail_etl.jobs import analytics

    attributes = {n for s in config.sources_of("sales").values() for n in s.attribute_specs()}
    columns = [*analytics.GRAIN_COLUMNS, *sorted(attributes)]
    measures = list(analytics.MEASURES)
    for name, mart in config.marts.items():
        where = ("marts", name)
        if not _TABLE_NAME.fullmatch(name) or len(name) > 64:
            yield Problem(f"mart name {name!r} is not a table name", where,
                          "use lower-case letters, digits and _, starting with a letter (at most 64)")
        elif name in analytics.MARTS or name in _LAKE_TABLES:
            yield Problem(f"mart name {name!r} is a table the pipeline already writes", where,
                          "choose another name")
        for column in dict.fromkeys(mart.grain):
            if column not in columns:
                yield Problem(f"mart {name!r}: unknown grain column {column!r}", (*where, "grain"),
                              _suggest(column, columns, "a canonical column of sales_enriched "
                                            "or a declared attribute"))
        for column in {c for c in mart.grain if mart.grain.count(c) > 1}:
            yield Problem(f"mart {name!r}: grain column {column!r} is listed twice", (*where, "grain"))
        period = analytics.period_column(mart.time)
        for column in sorted(set(mart.grain) & {*mart.measures, *([period] if period else [])}):
            yield Problem(f"mart {name!r}: {column!r} would be two columns of the mart", (*where, "grain"),
                          "a grain column may not be named like a measure or the period column")
        for measure in dict.fromkeys(mart.measures):
            if measure not in measures:
                yield Problem(f"mart {name!r}: unknown measure {measure!r}", (*where, "measures"),
                              _suggest(measure, measures, "a measure of docs/metrics.md"))
        for measure in {m for m in mart.measures if mart.measures.count(m) > 1}:
            yield Problem(f"mart {name!r}: measure {measure!r} is listed twice", (*where, "measures"))


def _suggest(name: str, names: list[str], what: str) -> str:
    return did_you_mean(name, names) + f"use {what}: {', '.join(names)}"


# -- extras the configuration needs -----------------------------------------------------------------


def extras_problems(config: Config) -> Iterator[Problem]:
    """A configured engine, lake or channel whose optional dependency is not installed."""
    if config.engine.name == "spark" and not _installed("pyspark"):
        yield _extra("pyspark", "spark", "the spark engine", ("engine", "name"))
    if config.lake.root.startswith("s3://") and not _installed("boto3"):
        yield _extra("boto3", "aws", "an s3:// lake", ("lake", "root"))
    for index, channel in enumerate(config.notifications.channels):
        if channel.sns is not None and not _installed("boto3"):
            yield _extra("boto3", "aws", "the sns channel", ("notifications", "channels", str(index), "sns"))


def _extra(package: str, extra: str, needed_for: str, path: tuple[str, ...]) -> Problem:
    error = MissingExtraError(package, extra, needed_for)
    return Problem(error.message, path, error.hint)


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
