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
from retail_etl.model import reference_key
from retail_etl.quality import compile as rules_sql
from retail_etl.quality.ruleset import SourceRule
from retail_etl.quality.source_columns import carried_column
from retail_etl.quoting import ident, idents, lit
from retail_etl.sources.csv_reader import read_header
from retail_etl.sources.mapping import SourcePlan, parse_failures, source_value

READ_RULE_ID = "Read.malformed"
KEY_RULE_ID = "Key.duplicate"
#: Entities whose valid rows keep their original record (a later stage may still quarantine them).
RECORD_KEPT = ("sales",)


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
    key = reference_key(source)
    flagged = _build_flagged(engine, plan, checks, record, checked, key=key, key_wins=source.key_wins)
    for name in raw_tables:
        engine.drop(name)
    failures = "".join(f", count({c.message_column})" for c in checks)
    if key:
        failures += f", count({_KEY_MESSAGE})"
    parsed_rows, result.rows_valid, *counts = engine.fetch_row(
        f"SELECT count(*), count(*) FILTER (WHERE array_length(_failed_rules) = 0){failures} FROM {flagged}")
    key_failed = counts.pop() if key else 0
    for check, failed in zip(checks, counts, strict=True):
        result.rules.append(
            RuleResult(check.id, check.text, check.severity, check.level, rows_failed=failed, passed=failed == 0)
        )
        if failed and check.severity == "warn":
            result.warnings.append(f"{check.id}: {failed} row(s) failed ({check.text})")
    if key:
        result.rules.append(RuleResult(KEY_RULE_ID, f"{'+'.join(key)} unique ({source.key_wins} row wins)",
                                       "quarantine", "row", rows_failed=key_failed, passed=key_failed == 0))
    result.rules.append(
        RuleResult(READ_RULE_ID, "CSV record readable", "quarantine", "read", result.rows_unparseable,
                   passed=result.rows_unparseable == 0)
    )

    breaches = _evaluate_dataset_rules(engine, rules, tables, result, flagged)

    columns = idents(c.name for c in plan.entity.columns)
    run, name = lit(run_id), lit(plan.name)
    kept_record = ", _record AS record" if plan.entity.name in RECORD_KEPT else ""
    result.valid_query = (
        f"SELECT {columns}, {name} AS source, source_file, delivery_id, source_line, "
        f"{run} AS run_id{kept_record} FROM {flagged} WHERE array_length(_failed_rules) = 0"
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
    _warn_empty_files(engine, result, rules, flagged, ident(rejects))
    result.seconds = time.perf_counter() - started
    _check_gate(engine, source, result, breaches, checks, flagged, ident(rejects))
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
        + [f"{sql(source_value(c))} AS {ident(carried_column(c))}" for c in plan.carried]
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
        kind, column_name = check_id.split(".", 1)
        what = f"{column_name} fits its type" if kind == "Range" else f"{column_name} parses"
        checks.append(_Check(check_id, what, "quarantine", "parse",
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


def _build_flagged(
    engine: Engine, plan: SourcePlan, checks: Sequence[_Check], record: str, checked: str, *,
    key: Sequence[str] | None = None, key_wins: str = "first",
) -> str:
    """The one materialised relation: canonical rows, check messages, the quarantine checks each
    row failed, and the original record of the rows that failed any (of every row, for an entity
    whose later stages may quarantine it); returns its SQL name.

    With ``key``, of the rows that pass every check and share a key, one wins (the first or the
    latest in file, then line order) and the others fail :data:`KEY_RULE_ID`.
    """
    quarantine_ids = [c for c in checks if c.severity == "quarantine"]
    q_ids = _failed_list(quarantine_ids, lambda c: exp.Literal.string(c.id))
    q_msgs = _failed_list(quarantine_ids, lambda c: exp.column(c.message_column))
    kept = ", ".join(
        ["source_file", "delivery_id", "source_line", *(ident(c.name) for c in plan.entity.columns)]
        + [ident(carried_column(c)) for c in plan.carried]
        + [c.message_column for c in checks]
    )
    checked_rows = f"SELECT *, {sql(q_ids)} AS _failed_rules, {sql(q_msgs)} AS _messages FROM {checked}"
    failed_rules, messages = "_failed_rules", "_messages"
    if key:
        checked_rows = _key_ranked(checked_rows, key, key_wins)
        kept += f", {_KEY_MESSAGE}"
        failed_rules = (f"CASE WHEN {_KEY_MESSAGE} IS NULL THEN _failed_rules "
                        f"ELSE [{lit(KEY_RULE_ID)}] END AS _failed_rules")
        messages = f"CASE WHEN {_KEY_MESSAGE} IS NULL THEN _messages ELSE [{_KEY_MESSAGE}] END AS _messages"
    keep_record = "array_length(_failed_rules) > 0" + (f" OR {_KEY_MESSAGE} IS NOT NULL" if key else "")
    record_column = (f"{record} AS _record" if plan.entity.name in RECORD_KEPT
                     else f"CASE WHEN {keep_record} THEN {record} END AS _record")
    flagged = engine.temp_name("flagged")
    engine.table(
        flagged,
        f"SELECT {kept}, {failed_rules}, {messages}, {record_column} FROM ({checked_rows}) AS _c",
    )
    return ident(flagged)


_KEY_MESSAGE = "_fail_key"


def _key_ranked(rows: str, key: Sequence[str], key_wins: str) -> str:
    """``rows`` with :data:`_KEY_MESSAGE`: NULL for each key's winner (and for rows that failed a
    check or have a NULL key column), else why the row loses."""
    partition = idents(key)
    direction = "DESC" if key_wins == "latest" else "ASC"
    window = (f"PARTITION BY {partition}, _eligible "
              f"ORDER BY source_file {direction}, source_line {direction}")
    eligible = " AND ".join(["array_length(_failed_rules) = 0", *(f"{ident(k)} IS NOT NULL" for k in key)])
    quote = lit("'")
    values = " || ', ' || ".join(f"{lit(k + ' ')} || {quote} || CAST({ident(k)} AS VARCHAR) || {quote}" for k in key)
    line = "CAST(_winner_line AS VARCHAR)"
    winner = f"CASE WHEN _winner_file = source_file THEN 'line ' || {line} ELSE _winner_file || ' line ' || {line} END"
    message = (f"{values} || ' occurs ' || CAST(_key_rows AS VARCHAR) || ' times in ' || source_file || "
               f"{lit('; the ' + key_wins + ' row (')} || {winner} || ') wins'")
    return f"""
        SELECT *, CASE WHEN _eligible AND _key_rank > 1 THEN {message} END AS {_KEY_MESSAGE}
        FROM (SELECT *, row_number() OVER ({window}) AS _key_rank, count(*) OVER (PARTITION BY {partition}, _eligible)
                     AS _key_rows, first_value(source_file) OVER ({window}) AS _winner_file,
                     first_value(source_line) OVER ({window}) AS _winner_line
              FROM (SELECT *, {eligible} AS _eligible FROM ({rows}) AS _r) AS _e) AS _k
    """


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
) -> list[str]:
    """Measure the dataset-level rules; returns the breaches of those with severity ``fail``."""
    breaches = []
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
                breaches.append(message)
            else:
                result.warnings.append(message)
    return breaches


def _warn_empty_files(
    engine: Engine, result: ValidationResult, rules: Sequence[SourceRule], flagged: str, rejects: str
) -> None:
    """A file without a single record is reported, unless a ``RowCount`` rule judges row counts."""
    if any(r.rule.kind == "RowCount" for r in rules):
        return
    seen = {r[0] for r in engine.fetch_rows(
        f"SELECT DISTINCT source_file FROM {flagged} UNION SELECT DISTINCT _source_file FROM {rejects}")}
    for name in result.files:
        if name not in seen:
            result.warnings.append(f"file {name} holds no records")


#: How many failing checks a breached gate names.
TOP_CHECKS = 3


def _check_gate(
    engine: Engine, source: SourceConfig, result: ValidationResult, breaches: list[str], checks: Sequence[_Check],
    flagged: str, rejects: str,
) -> None:
    """Raise :class:`QualityGateError` when a ``fail`` rule or the quarantine-rate fail level is
    breached, naming the top failing checks with their counts and one sample line each; warn
    above the warn level."""
    for r in result.rules:
        if r.level in ("row", "parse") and r.severity == "fail" and r.rows_failed:
            breaches.append(f"rule {r.id} ({r.rule}) failed for {r.rows_failed} row(s)")
    rate = result.quarantine_rate
    limit = source.thresholds.quarantine_rate
    if limit.fail is not None and rate > limit.fail:
        breaches.append(f"{result.rows_quarantined} of {result.rows_read} rows ({rate:.1%}) would be quarantined, "
                        f"above the fail level {limit.fail:.0%}")
    if breaches:
        top = top_failing_checks(engine, result, checks, flagged, rejects)
        listing = "".join(f"\n  {line}" for line in top)
        raise QualityGateError(
            f"source {result.source!r}: {'; '.join(breaches)}; nothing was committed"
            + (f"\ntop failing checks:{listing}" if top else ""),
            hint="inspect the failing lines (the run's figures are in quality_runs and quality_metrics); fix the "
            f"data, the rules or sources.{result.source}.columns, or raise sources.{result.source}.thresholds",
            measured=result,
        )
    if limit.warn is not None and rate > limit.warn:
        result.warnings.append(
            f"quarantine rate {rate:.1%} ({result.rows_quarantined} of {result.rows_read} rows) "
            f"is above the warn level {limit.warn:.0%}"
        )


def top_failing_checks(
    engine: Engine, result: ValidationResult, checks: Sequence[_Check], flagged: str, rejects: str
) -> list[str]:
    """The checks that failed the most rows (at most :data:`TOP_CHECKS`), each as ``id (rule): n
    row(s), e.g. file:line: why`` with the first failing line as the sample."""
    by_id = {c.id: c for c in checks}
    failing = sorted((r for r in result.rules if r.rows_failed), key=lambda r: (-r.rows_failed, r.id))
    lines = []
    for r in failing[:TOP_CHECKS]:
        if r.id == READ_RULE_ID:
            sample = engine.fetch_rows(f"SELECT _source_file, _source_line, reason FROM {rejects} "
                                       "ORDER BY _source_file, _source_line LIMIT 1")
        elif r.id in by_id:
            column = ident(by_id[r.id].message_column)
            sample = engine.fetch_rows(f"SELECT source_file, source_line, {column} FROM {flagged} "
                                       f"WHERE {column} IS NOT NULL ORDER BY source_file, source_line LIMIT 1")
        else:
            sample = []
        example = f", e.g. {sample[0][0]}:{sample[0][1]}: {sample[0][2]}" if sample else ""
        lines.append(f"{r.id} ({r.rule}): {r.rows_failed} row(s){example}")
    return lines


def sql(expression: exp.Expression) -> str:
    return expression.sql(dialect="duckdb")
