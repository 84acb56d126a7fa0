"""Validate job: raw files of one source -> canonical valid rows + quarantined rows + quality metrics.

Every field is read as text first (nothing is lost in parsing), then parsed with the source's
declared formats into the canonical model, then checked by the source's rules. A row fails
if any quarantine-severity check fails: a typed value that does not parse, a missing
partition key, or a row-level rule. Lines the CSV reader cannot split into fields are
quarantined with their reason. Conservation: rows read = valid + quarantined, always.

The job builds relations in the given engine, under names unique in its session, and returns the
queries that read them; writing and committing is the caller's.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlglot import exp

from retail_etl.config.model import SourceConfig
from retail_etl.engines.base import EMPTY_REJECTS, Engine
from retail_etl.errors import QualityGateError, SourceError
from retail_etl.quality import compile as rules_sql
from retail_etl.quality.ruleset import SourceRule
from retail_etl.quoting import ident, idents, lit
from retail_etl.sources.csv_reader import read_header
from retail_etl.sources.mapping import SourcePlan, parse_failures

READ_RULE_ID = "Read.malformed"


@dataclass(frozen=True)
class InputFile:
    """A raw file to validate: where it is, its file name, and the id of its delivery (the file
    name when not given)."""

    path: Path
    name: str
    delivery: str = ""

    @property
    def delivery_id(self) -> str:
        return self.delivery or self.name


@dataclass
class RuleResult:
    id: str
    rule: str
    severity: str
    level: str  # row | dataset | parse | read
    rows_failed: int = 0
    value: float | None = None
    passed: bool = True


@dataclass
class ValidationResult:
    """What one source's batch produced; ``valid_query`` and ``quarantine_query`` read its relations."""

    source: str
    files: list[str]
    rows_read: int = 0
    rows_valid: int = 0
    rows_quarantined: int = 0
    rows_unparseable: int = 0
    blank_lines: int = 0
    rules: list[RuleResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    valid_query: str = ""
    quarantine_query: str = ""

    @property
    def quarantine_rate(self) -> float:
        return self.rows_quarantined / self.rows_read if self.rows_read else 0.0


def check_headers(plan: SourcePlan, source: SourceConfig, files: Sequence[InputFile]) -> None:
    """Fail before touching data if a file lacks a column the mapping reads."""
    for file in files:
        header = read_header(file.path, source.csv)
        if not header:
            continue  # empty file: no rows, nothing to map
        missing = [c for c in plan.raw_columns if c not in header]
        if missing:
            raise SourceError(
                f"missing column(s) {', '.join(map(repr, missing))} required by the mapping of source "
                f"{plan.name!r}; the header has: {', '.join(header)}",
                path=str(file.name),
                hint=f"fix sources.{plan.name}.columns in retail-etl.yaml or the file's header",
            )


def validate(
    engine: Engine,
    plan: SourcePlan,
    source: SourceConfig,
    rules: Sequence[SourceRule],
    files: Sequence[InputFile],
    *,
    run_id: str,
    tables: Mapping[str, str],
    partition_by: Sequence[str] = (),
) -> ValidationResult:
    """Read, parse and check ``files``; ``valid_query`` and ``quarantine_query`` of the result
    select the valid and quarantined rows from relations left in ``engine``."""
    started = time.perf_counter()
    result = ValidationResult(source=plan.name, files=[f.name for f in files])
    rejects = engine.temp_name("rejects")
    engine.table(rejects, EMPTY_REJECTS)
    raw_tables: dict[str, InputFile] = {}
    for file in files:
        name = engine.temp_name("raw")
        # The reader's lineage is the delivery: two files of one name are two deliveries.
        read = engine.load_csv(file.path, source.csv, table=name, rejects_table=rejects, source_file=file.delivery_id)
        result.blank_lines += read.blank_lines
        result.rows_unparseable += read.rejected
        if read.columns:
            raw_tables[name] = file

    canonical, record = _build_canonical(engine, plan, raw_tables)
    checks = _row_checks(plan, source, rules, tables, partition_by)
    checked = _build_checked(engine, checks, canonical)
    flagged = _build_flagged(engine, plan, checks, record, checked)
    for name in raw_tables:
        engine.drop(name)
    failures = "".join(f", count({c.message_column})" for c in checks)
    parsed_rows, result.rows_valid, *counts = engine.fetch_row(
        f"SELECT count(*), count(*) FILTER (WHERE array_length(_failed_rules) = 0){failures} FROM {flagged}")
    for check, failed in zip(checks, counts, strict=True):
        result.rules.append(
            RuleResult(check.id, check.text, check.severity, check.level, rows_failed=failed, passed=failed == 0)
        )
        if failed and check.severity == "warn":
            result.warnings.append(f"{check.id}: {failed} row(s) failed ({check.text})")
    result.rules.append(
        RuleResult(READ_RULE_ID, "CSV record readable", "quarantine", "read", result.rows_unparseable,
                   passed=result.rows_unparseable == 0)
    )

    _evaluate_dataset_rules(engine, rules, tables, result, flagged)

    columns = idents(c.name for c in plan.entity.columns)
    run, name = lit(run_id), lit(plan.name)
    result.valid_query = (
        f"SELECT {columns}, {name} AS source, source_file, delivery_id, source_line, "
        f"{run} AS run_id FROM {flagged} WHERE array_length(_failed_rules) = 0"
    )
    has_date = "sale_date" in plan.entity.names
    date, null_date = (", sale_date", ", CAST(NULL AS DATE)") if has_date else ("", "")
    result.quarantine_query = (
        f"SELECT {run} AS run_id, CAST(now() AS TIMESTAMP) AS quarantined_at, "
        f"{name} AS source, source_file, delivery_id, source_line, "
        "'validate' AS stage, _failed_rules AS failed_rules, _messages AS messages, _record AS record, "
        f"CAST(NULL AS VARCHAR) AS raw_line{date} FROM {flagged} WHERE array_length(_failed_rules) > 0 "
        f"UNION ALL SELECT {run}, CAST(now() AS TIMESTAMP), {name}, "
        f"{_file_names(files)}, _source_file, _source_line, 'read', [{lit(READ_RULE_ID)}], [reason], "
        "CAST(NULL AS VARCHAR), raw_line"
        f"{null_date} FROM {ident(rejects)}"
    )
    result.rows_read = parsed_rows + result.rows_unparseable
    result.rows_quarantined = result.rows_read - result.rows_valid
    _apply_thresholds(source, result)
    result.seconds = time.perf_counter() - started
    return result


@dataclass(frozen=True)
class _Check:
    id: str
    text: str
    severity: str
    level: str
    passes: exp.Expression
    message: exp.Expression
    index: int

    @property
    def message_column(self) -> str:
        return f"_fail_{self.index}"


def _file_names(files: Sequence[InputFile]) -> str:
    """The file name of the delivery whose id is in ``_source_file`` (a reader's lineage column)."""
    if not files:
        return "CAST(NULL AS VARCHAR)"
    whens = " ".join(f"WHEN {lit(f.delivery_id)} THEN {lit(f.name)}" for f in files)
    return f"CASE _source_file {whens} END"


def _build_canonical(engine: Engine, plan: SourcePlan, raw_tables: Mapping[str, InputFile]) -> tuple[str, str]:
    """A view of lineage, the raw fields, canonical columns and parse-check messages.

    Returns the view's SQL name and the expression of the original record as JSON over the raw
    fields: only the quarantined rows need it, so :func:`_build_flagged` builds it for those alone.
    """
    per_table = {t: _raw_columns(engine, t) for t in raw_tables}
    first_spelling: dict[str, str] = {}  # names are case-insensitive; keep the first file's spelling
    for cols in per_table.values():
        for c in cols:
            first_spelling.setdefault(c.casefold(), c)
    raw_cols = list(first_spelling.values())
    missing = [c for c in plan.raw_columns if c.casefold() not in first_spelling]
    def null(column: str) -> str:
        return f"CAST(NULL AS VARCHAR) AS {ident(column)}"

    # Files of a batch may order (or lack) columns differently: line them up by name.
    selects = []
    for table, cols in per_table.items():
        have = {c.casefold() for c in cols}
        picks = "".join(f", {ident(c)}" if c.casefold() in have else f", {null(c)}" for c in [*raw_cols, *missing])
        selects.append(f"SELECT {lit(raw_tables[table].name)} AS _source_file, _source_file AS _delivery_id, "
                       f"_source_line{picks} FROM {ident(table)}")
    union = " UNION ALL ".join(selects) or (
        "SELECT CAST(NULL AS VARCHAR) AS _source_file, CAST(NULL AS VARCHAR) AS _delivery_id, "
        "CAST(NULL AS BIGINT) AS _source_line"
        + "".join(f", {null(c)}" for c in missing) + " WHERE false"
    )
    # Raw fields under names that cannot clash with canonical ones (both may say "sold_at").
    fields = [f"{ident(c)} AS _field_{i}" for i, c in enumerate(raw_cols)]
    record_args = ", ".join(f"{lit(c)}, _field_{i}" for i, c in enumerate(raw_cols))
    record = f"CAST(json_object({record_args}) AS VARCHAR)" if raw_cols else "CAST('{}' AS VARCHAR)"
    parse = [
        exp.Case(ifs=[exp.If(this=passes, true=exp.null())], default=message).as_(f"_parse_{i}")
        for i, (_, passes, message) in enumerate(parse_failures(plan))
    ]
    select = ", ".join(
        ["_source_file AS source_file", "_delivery_id AS delivery_id", "_source_line AS source_line", *fields]
        + [sql(e) for e in plan.projection()]
        + [sql(e) for e in parse]
    )
    canonical = engine.temp_name("canonical")
    engine.view(canonical, f"SELECT {select} FROM ({union}) AS _raw")
    return ident(canonical), record


def _raw_columns(engine: Engine, table: str) -> list[str]:
    return [c for c in engine.columns(table) if c not in ("_source_file", "_source_line")]


def _row_checks(
    plan: SourcePlan,
    source: SourceConfig,
    rules: Sequence[SourceRule],
    tables: Mapping[str, str],
    partition_by: Sequence[str],
) -> list[_Check]:
    checks: list[_Check] = []
    for i, (check_id, _, _) in enumerate(parse_failures(plan)):
        column = exp.column(f"_parse_{i}")
        checks.append(_Check(check_id, f"{check_id.split('.', 1)[1]} parses", "quarantine", "parse",
                             column.is_(exp.null()), column, len(checks)))
    for col in partition_by:
        ref = exp.column(col, quoted=True)
        checks.append(
            _Check(f"Required.{col}", f"{col} present (partition key)", "quarantine", "row",
                   exp.not_(ref.is_(exp.null())), exp.Literal.string(f"{col} is missing; it is the partition key"),
                   len(checks))
        )
    if "quantity" in plan.entity.names and not source.returns:
        qty = exp.column("quantity", quoted=True)
        checks.append(
            _Check("Returns.not_allowed", "quantity >= 0 (returns: false)", "quarantine", "row",
                   exp.or_(qty.is_(exp.null()), qty >= 0),
                   exp.Concat(expressions=[exp.Literal.string("negative quantity "), exp.cast(qty.copy(), "VARCHAR"),
                                           exp.Literal.string(" but this source does not allow returns")]),
                   len(checks))
        )
    order = [exp.column("delivery_id"), exp.column("source_line")]
    for rule in rules:
        if not rule.row_level:
            continue
        checks.append(
            _Check(rule.id, rule.rule.text, rule.severity, "row",
                   rules_sql.row_check(rule.rule, tables=tables, order_by=order),
                   rules_sql.failure_message(rule.rule), len(checks))
        )
    return checks


def _build_checked(engine: Engine, checks: Sequence[_Check], canonical: str) -> str:
    """A view of ``canonical`` with each check's message column (NULL where the row passes)."""
    cols = [
        exp.Case(ifs=[exp.If(this=c.passes, true=exp.null())], default=c.message).as_(c.message_column)
        for c in checks
    ]
    extra = "".join(f", {sql(c)}" for c in cols)
    checked = engine.temp_name("checked")
    engine.view(checked, f"SELECT *{extra} FROM {canonical}")
    return ident(checked)


def _build_flagged(engine: Engine, plan: SourcePlan, checks: Sequence[_Check], record: str, checked: str) -> str:
    """The one materialised relation: canonical rows, check messages, the quarantine checks each
    row failed, and the original record of the rows that failed any; returns its SQL name."""
    quarantine_ids = [c for c in checks if c.severity == "quarantine"]
    q_ids = _failed_list(quarantine_ids, lambda c: exp.Literal.string(c.id))
    q_msgs = _failed_list(quarantine_ids, lambda c: exp.column(c.message_column))
    kept = ", ".join(
        ["source_file", "delivery_id", "source_line", *(ident(c.name) for c in plan.entity.columns)]
        + [c.message_column for c in checks]
    )
    flagged = engine.temp_name("flagged")
    engine.table(
        flagged,
        f"SELECT {kept}, _failed_rules, _messages, "
        f"CASE WHEN array_length(_failed_rules) > 0 THEN {record} END AS _record "
        f"FROM (SELECT *, {sql(q_ids)} AS _failed_rules, {sql(q_msgs)} AS _messages FROM {checked}) AS _c",
    )
    return ident(flagged)


def _failed_list(checks: Sequence[_Check], value) -> exp.Expression:
    """A list of ``value(check)`` for the checks the row failed (empty list when none)."""
    if not checks:
        return exp.cast(exp.Array(expressions=[]), "VARCHAR[]")
    items = [
        exp.Case(ifs=[exp.If(this=exp.not_(exp.column(c.message_column).is_(exp.null())), true=value(c))])
        for c in checks
    ]
    return exp.func("list_filter", exp.Array(expressions=items), exp.Lambda(
        this=exp.not_(exp.column("x").is_(exp.null())), expressions=[exp.to_identifier("x")]))


def _evaluate_dataset_rules(
    engine: Engine, rules: Sequence[SourceRule], tables: Mapping[str, str], result: ValidationResult, flagged: str
) -> None:
    for rule in rules:
        if rule.row_level:
            continue
        query = rules_sql.dataset_metric(rule.rule, relation=flagged, tables=tables)
        value = engine.fetch_row(sql(query))[0]
        value = float(value) if value is not None else 0.0
        passed = rules_sql.dataset_passes(rule.rule, value)
        result.rules.append(RuleResult(rule.id, rule.rule.text, rule.severity, "dataset", value=value, passed=passed))
        if not passed:
            message = f"{rule.id}: {rule.rule.text} failed (value {value:g})"
            if rule.severity == "fail":
                raise QualityGateError(
                    f"source {result.source!r}: {message}; nothing was committed",
                    hint="inspect the input files; fix the data or the rule, then run again",
                )
            result.warnings.append(message)
    for r in result.rules:
        if r.level in ("row", "parse") and r.severity == "fail" and r.rows_failed:
            raise QualityGateError(
                f"source {result.source!r}: rule {r.id} ({r.rule}) failed for {r.rows_failed} row(s); "
                "nothing was committed",
                hint="inspect the rows with `retail-etl query`, fix the data or the rule, then run again",
            )


def _apply_thresholds(source: SourceConfig, result: ValidationResult) -> None:
    rate = result.quarantine_rate
    limit = source.thresholds.quarantine_rate
    if limit.fail is not None and rate > limit.fail:
        raise QualityGateError(
            f"source {result.source!r}: {result.rows_quarantined} of {result.rows_read} rows "
            f"({rate:.1%}) would be quarantined, above the fail level {limit.fail:.0%}; nothing was committed",
            hint="the extract is probably broken or the mapping is wrong; check the files and "
            f"sources.{result.source}.columns, or raise thresholds.quarantine_rate.fail",
        )
    if limit.warn is not None and rate > limit.warn:
        result.warnings.append(
            f"quarantine rate {rate:.1%} ({result.rows_quarantined} of {result.rows_read} rows) "
            f"is above the warn level {limit.warn:.0%}"
        )


def sql(expression: exp.Expression) -> str:
    return expression.sql(dialect="duckdb")
