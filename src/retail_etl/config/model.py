"""Configuration schema (``retail-etl.yaml``), validated with pydantic.

Unknown keys are errors: a typo must not silently fall back to a default.
"""

from __future__ import annotations

import difflib
import re

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from retail_etl.config.states import (
    MAX_DELAY_SECONDS,
    MAX_INTERVAL_SECONDS,
    MAX_MAX_ATTEMPTS,
    check_all_last,
    check_error_equals,
)


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*|%)\s*$", re.IGNORECASE)
_UNITS = {  # DuckDB's size units (case-insensitive) -> bytes
    "b": 1, "byte": 1, "bytes": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
    "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "t": 1000**4, "tb": 1000**4, "tib": 1024**4,
}
_MIN_MEMORY = 64 * 1024**2


def check_memory_limit(value: str) -> str:
    """``value`` if DuckDB reads it as a memory size (``1.5GB``, ``512 MiB``, ``80%``) of at least 64 MiB."""
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a size; write a number and a unit, e.g. 2GB, 512MiB or 80%")
    number, unit = float(match.group(1)), match.group(2).lower()
    if unit == "%":
        if not 0 < number <= 100:
            raise ValueError(f"{value!r}: a share of the machine's memory is between 0% and 100%")
        return value
    if unit not in _UNITS:
        close = difflib.get_close_matches(unit.upper(), [u.upper() for u in _UNITS if len(u) > 1], n=1)
        raise ValueError(
            f"{value!r}: unknown unit {match.group(2) or '(none)'!r}"
            + (f"; did you mean {close[0]!r}?" if close else "")
            + " (units: KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
        )
    if number * _UNITS[unit] < _MIN_MEMORY:
        raise ValueError(f"{value!r} is too little memory for the engine; give at least 64MiB")
    return value


def check_encoding(value: str) -> str:
    """``value`` if it names a Python text codec (what the CSV reader decodes with)."""
    import codecs
    import encodings.aliases

    try:
        info = codecs.lookup(value)
    except LookupError:
        names = sorted({*encodings.aliases.aliases, *encodings.aliases.aliases.values()})
        close = difflib.get_close_matches(value.lower().replace("-", "_"), names, n=1, cutoff=0.6)
        raise ValueError(
            f"unknown encoding {value!r}" + (f"; did you mean {close[0].replace('_', '-')!r}?" if close else "")
            + " (e.g. utf-8, cp1252, latin-1, utf-16)"
        ) from None
    if not getattr(info, "_is_text_encoding", True):
        raise ValueError(f"{value!r} is not a text encoding (e.g. utf-8, cp1252, latin-1, utf-16)")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CsvOptions(_Strict):
    """How to read a CSV file."""

    delimiter: str = ","
    quote: str = '"'
    escape: str = '"'
    header: bool = True
    encoding: str = "utf-8"
    decimal_separator: str = "."
    thousands_separator: str | None = None
    exponent: bool = Field(
        False, description="Numbers may be written in scientific notation (1.5e3); off, such a value is quarantined."
    )
    null_values: tuple[str, ...] = ("",)
    skip_rows: int = Field(0, ge=0, description="Lines to skip before the header (titles, banners).")
    column_names: tuple[str, ...] | None = Field(
        None, description="Column names for a file without a header line (header: false)."
    )

    @field_validator("delimiter", "quote", "escape")
    @classmethod
    def _one_char(cls, v: str) -> str:
        if len(v) != 1:
            raise ValueError(f"must be a single character, got {v!r}")
        return v

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, v: str) -> str:
        return check_encoding(v)

    @field_validator("decimal_separator")
    @classmethod
    def _decimal(cls, v: str) -> str:
        if v not in (".", ","):
            raise ValueError(f"must be '.' or ',', got {v!r}")
        return v

    @model_validator(mode="after")
    def _names_without_header(self) -> CsvOptions:
        if not self.header and not self.column_names:
            raise ValueError("a file without a header needs column_names: [...]")
        if self.thousands_separator is not None and self.thousands_separator == self.decimal_separator:
            raise ValueError("thousands_separator must differ from decimal_separator")
        return self


class ColumnSpec(_Strict):
    """Where a canonical column comes from in the source, and how to parse it."""

    column: str | None = Field(None, description="The source column (or give date and time).")
    date: str | None = Field(None, description="With time: a timestamp from a date column and a time column.")
    time: str | None = Field(None, description="With date: the time column; their values are joined by a space.")
    format: str | tuple[str, ...] | None = Field(
        None, description="strftime-style format for dates and timestamps, e.g. '%d/%m/%Y %H:%M'; "
        "a list of formats is tried in order.",
    )
    expr: str | None = Field(
        None, description="SQL over `value` (the source text, trimmed), applied before the value is parsed, "
        "e.g. regexp_replace(value, '\\.0$', '').",
    )

    @model_validator(mode="after")
    def _one_origin(self) -> ColumnSpec:
        if (self.column is None) == (self.date is None and self.time is None):
            raise ValueError("give either column, or date and time")
        if (self.date is None) != (self.time is None):
            raise ValueError("date and time go together")
        if isinstance(self.format, tuple) and not self.format:
            raise ValueError("format: give at least one pattern")
        return self

    @property
    def formats(self) -> tuple[str, ...]:
        """The declared formats, in the order they are tried (none: ISO)."""
        if self.format is None:
            return ()
        return (self.format,) if isinstance(self.format, str) else self.format

    @property
    def source_columns(self) -> tuple[str, ...]:
        """The source columns this mapping reads."""
        return (self.column,) if self.column is not None else (self.date or "", self.time or "")


class Standardize(_Strict):
    """How a text column is made canonical (after trimming, which applies to every text column)."""

    case: Literal["upper", "lower"] | None = None
    values: dict[str, str] = Field(
        default_factory=dict, description="Raw value (after trim and case) -> canonical value, e.g. cc: card."
    )


class RuleSpec(_Strict):
    """A quality rule in DQDL with its severity."""

    rule: str
    severity: Literal["quarantine", "warn", "fail"] = "quarantine"
    id: str | None = None


class Threshold(_Strict):
    warn: float | None = Field(None, ge=0, le=1)
    fail: float | None = Field(None, ge=0, le=1)


class Thresholds(_Strict):
    """Dataset-level guards: the share of rows quarantined in a run."""

    quarantine_rate: Threshold = Threshold(warn=0.05, fail=0.30)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration_seconds(value: str) -> float:
    """Seconds in a duration written as a number and a unit: ``90s``, ``30m``, ``12h``, ``1d``, ``2w``."""
    match = _DURATION.match(value)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"{value!r} is not a duration; write a positive number and a unit (s, m, h, d, w), e.g. 1d")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


class Expect(_Strict):
    """How often a source delivers (like dbt's source freshness), measured from the ingest time
    of its newest delivery in the raw manifest."""

    every: str = Field(description="A delivery is expected at least this often (e.g. 1d, 12h): older, a run warns.")
    fail: str | None = Field(None, description="Older than this (e.g. 3d), a run fails its quality gate (exit 3).")

    @field_validator("every", "fail")
    @classmethod
    def _duration(cls, v: str | None) -> str | None:
        if v is not None:
            duration_seconds(v)
        return v

    @model_validator(mode="after")
    def _fail_not_before_warn(self) -> Expect:
        if self.fail is not None and duration_seconds(self.fail) < duration_seconds(self.every):
            raise ValueError(f"fail ({self.fail}) must not be shorter than every ({self.every})")
        return self


_ATTRIBUTE_TYPE = re.compile(r"^(VARCHAR|INTEGER|BIGINT|DOUBLE|DATE|TIMESTAMP|DECIMAL\(\d+,\d+\))$")


class AttributeSpec(_Strict):
    """An extra source column kept on every line under its own name (region, segment, department…)."""

    column: str
    type: str = Field(
        "VARCHAR", description="VARCHAR, INTEGER, BIGINT, DOUBLE, DATE, TIMESTAMP or DECIMAL(p,s)."
    )
    format: str | None = Field(None, description="strftime-style format of a DATE or TIMESTAMP attribute.")

    @field_validator("type")
    @classmethod
    def _type(cls, v: str) -> str:
        text = v.upper().replace(" ", "")
        if not _ATTRIBUTE_TYPE.match(text):
            raise ValueError(f"{v!r} is not an attribute type; use VARCHAR, INTEGER, BIGINT, DOUBLE, DATE, "
                             "TIMESTAMP or DECIMAL(p,s)")
        return text


class MoneyConfig(_Strict):
    """How a source writes its amounts."""

    scale: int = Field(
        2, ge=0, le=6, description="Decimal places of the amounts the source gives (281.372: 3 or more)."
    )
    discount_rate: Literal["fraction", "percent"] = Field(
        "fraction", description="How the mapped discount_rate is written: 0.125 (fraction) or 12.5 (percent)."
    )


class SourceConfig(_Strict):
    """A declared source: which files, how to read them, how they map to the canonical model."""

    entity: Literal["sales", "products"]
    path: str = Field(description="Glob of input files, relative to the project folder.")
    follow_symlinks: bool = Field(False, description="Ingest what a symbolic link matching `path` points to.")
    format: Literal["csv"] = "csv"
    csv: CsvOptions = CsvOptions()
    columns: dict[str, str | ColumnSpec]
    derived: dict[str, str] = {}
    defaults: dict[str, str | int | float | bool] = {}
    standardize: dict[str, Standardize] = Field(
        default_factory=dict,
        description="Per canonical text column: case folding and a map of raw values to canonical ones.",
    )
    key: tuple[str, ...] | None = None
    key_wins: Literal["first", "latest"] = Field(
        "first", description="Of the rows sharing a key: the first (delivery order, then file and line order) or the "
        "latest wins."
    )
    deliveries: Literal["accumulate", "replace"] = Field(
        "accumulate", description="A re-delivered file name adds a delivery, or replaces its earlier deliveries."
    )
    returns: bool = Field(True, description="Negative quantities are returns (kept), not errors.")
    unknown_products: Literal["quarantine", "keep"] = Field(
        "quarantine", description="A sales line whose product is not in the products reference."
    )
    rules: tuple[RuleSpec | str, ...] = ()
    thresholds: Thresholds = Thresholds()
    expect: Expect | None = Field(None, description="How often the source delivers; a late source warns or fails.")
    money: MoneyConfig = MoneyConfig()
    attributes: dict[str, str | AttributeSpec] = Field(
        default_factory=dict, description="Name -> source column (or {column, type, format}): kept on each line."
    )

    @field_validator("attributes", mode="after")
    @classmethod
    def _normalise_attributes(cls, v: dict[str, str | AttributeSpec]) -> dict[str, str | AttributeSpec]:
        return {k: (AttributeSpec(column=s) if isinstance(s, str) else s) for k, s in v.items()}

    def attribute_specs(self) -> dict[str, AttributeSpec]:
        """The declared attributes, each as an :class:`AttributeSpec`."""
        return {k: s if isinstance(s, AttributeSpec) else AttributeSpec(column=s) for k, s in self.attributes.items()}

    @field_validator("columns", mode="after")
    @classmethod
    def _normalise_columns(cls, v: dict[str, str | ColumnSpec]) -> dict[str, str | ColumnSpec]:
        return {k: (ColumnSpec(column=s) if isinstance(s, str) else s) for k, s in v.items()}

    @field_validator("rules", mode="after")
    @classmethod
    def _normalise_rules(cls, v: tuple[RuleSpec | str, ...]) -> tuple[RuleSpec, ...]:
        return tuple(RuleSpec(rule=r) if isinstance(r, str) else r for r in v)

    def column_spec(self, canonical: str) -> ColumnSpec | None:
        spec = self.columns.get(canonical)
        return spec if isinstance(spec, ColumnSpec) or spec is None else ColumnSpec(column=spec)


class S3Config(_Strict):
    """Where an ``s3://`` lake's object store answers; credentials come from the usual AWS sources."""

    endpoint_url: str | None = Field(None, description="e.g. http://127.0.0.1:9000 for MinIO; default: AWS.")
    region: str | None = Field(None, description="Default: AWS_REGION / AWS_DEFAULT_REGION.")
    lock_heartbeat_seconds: float = Field(30, gt=0, description="How often a run rewrites the lake lock object.")
    lock_stale_seconds: float = Field(
        120, gt=0, description="A lock object not rewritten for this long (by the object store's clock) is taken over."
    )

    @model_validator(mode="after")
    def _live_lock_never_stale(self) -> S3Config:
        # The store's clock has one-second resolution: a live lock may look one second older than it is.
        if self.lock_stale_seconds < 2 * self.lock_heartbeat_seconds + 1:
            raise ValueError(
                f"lock_stale_seconds ({self.lock_stale_seconds:g}) must be at least twice lock_heartbeat_seconds"
                f" plus one ({2 * self.lock_heartbeat_seconds + 1:g}), or a live run could lose its lock"
            )
        return self


class LakeConfig(_Strict):
    root: str = Field("lake", description="A folder (relative to this file) or s3://bucket/prefix.")
    namespace: str = "retail_etl"
    s3: S3Config = S3Config()


class SparkConfig(_Strict):
    """The Spark session the ``spark`` engine starts (or joins, if one is running in the process)."""

    master: str = Field("local[*]", description="Master URL: local[N], spark://host:7077, yarn, k8s://...")
    app_name: str = "retail-etl"
    conf: dict[str, str] = Field(default_factory=dict, description="Spark settings, e.g. spark.executor.memory: 4g.")

    @field_validator("conf", mode="before")
    @classmethod
    def _as_text(cls, v: object) -> object:
        # YAML reads `spark.sql.shuffle.partitions: 8` as a number and `...enabled: true` as a boolean.
        if isinstance(v, dict):
            return {k: str(x).lower() if isinstance(x, bool) else str(x) for k, x in v.items()}
        return v


class EngineConfig(_Strict):
    name: Literal["duckdb", "spark"] = "duckdb"
    # DuckDB's buffer pool; the process needs about 350 MB more (Parquet writers, pyiceberg), so
    # 1.5GB keeps a 10M-row run under 2 GiB.
    memory_limit: str = Field("1.5GB", description="DuckDB only; Spark's memory is set in spark.conf.")
    threads: int | None = Field(None, ge=1, description="DuckDB only; Spark's parallelism follows spark.master.")
    spark: SparkConfig = SparkConfig()

    @field_validator("memory_limit")
    @classmethod
    def _memory(cls, v: str) -> str:
        return check_memory_limit(v)


_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"

class RetrierConfig(_Strict):
    """A retrier, with AWS Step Functions semantics and defaults."""

    error_equals: tuple[str, ...] = Field(
        min_length=1, description="Error names: Transient, States.ALL, States.Timeout, or exception class names."
    )
    interval_seconds: float = Field(
        1, gt=0, le=MAX_INTERVAL_SECONDS,
        description="Wait before the first retry. The ASL export rounds a fraction up to whole seconds.",
    )
    max_attempts: int = Field(3, ge=0, le=MAX_MAX_ATTEMPTS, description="Retries (0: never retry).")
    backoff_rate: float = Field(2.0, ge=1, description="Each wait is this many times the previous one.")
    max_delay_seconds: float | None = Field(None, gt=0, le=MAX_DELAY_SECONDS, description="Cap on any wait.")
    jitter_strategy: Literal["FULL", "NONE"] = Field("NONE", description="FULL: wait a random time up to the delay.")

    @field_validator("error_equals")
    @classmethod
    def _valid_names(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return check_error_equals(v, "retrier")


def _check_retry(v: tuple[RetrierConfig, ...] | None) -> tuple[RetrierConfig, ...] | None:
    if v is not None:
        check_all_last([r.error_equals for r in v], "retry")
    return v


class StepConfig(_Strict):
    """Overrides for one workflow step."""

    timeout_seconds: float | None = Field(None, gt=0, description="Fail the attempt with States.Timeout after this.")
    retry: tuple[RetrierConfig, ...] | None = Field(None, description="Replaces the workflow's retry list.")

    @field_validator("retry")
    @classmethod
    def _valid_retry(cls, v: tuple[RetrierConfig, ...] | None) -> tuple[RetrierConfig, ...] | None:
        return _check_retry(v)


class CircuitConfig(_Strict):
    """Stop starting executions after consecutive failures, until a cool-down or a reset."""

    enabled: bool = True
    failure_threshold: int = Field(3, ge=1, description="Consecutive failed executions that open the circuit.")
    cooldown_seconds: float = Field(3600, gt=0, description="Then one trial execution is allowed (half-open).")


class WorkflowConfig(_Strict):
    """How `retail-etl run` executes its steps: retries, timeouts, circuit breaker."""

    name: str = Field("retail-etl", min_length=1)
    timeout_seconds: float | None = Field(None, gt=0, description="Default timeout of every step.")
    retry: tuple[RetrierConfig, ...] | None = Field(
        None, description="Default retriers of every step (unset: retry Transient errors 3 times; []: never)."
    )
    steps: dict[str, StepConfig] = Field(default_factory=dict, description="Per-step overrides, by step name.")
    circuit: CircuitConfig = CircuitConfig()

    @field_validator("retry")
    @classmethod
    def _valid_retry(cls, v: tuple[RetrierConfig, ...] | None) -> tuple[RetrierConfig, ...] | None:
        return _check_retry(v)


class ConsoleChannelConfig(_Strict):
    stream: Literal["stderr", "stdout"] = "stderr"


class WebhookChannelConfig(_Strict):
    """POST JSON to a URL; ``payload: slack`` sends a Slack incoming-webhook message."""

    url: str | None = Field(None, description="The URL, when it is not a secret.")
    url_env: str | None = Field(None, pattern=_ENV_NAME, description="Environment variable holding the URL.")
    payload: Literal["json", "slack"] = "json"
    headers: dict[str, str] = Field(default_factory=dict)
    headers_env: dict[str, str] = Field(
        default_factory=dict, description="Header name -> environment variable holding its value."
    )
    timeout_seconds: float = Field(10, gt=0)

    @model_validator(mode="after")
    def _one_url(self) -> WebhookChannelConfig:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url and url_env")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {self.url!r}")
        for header, var in self.headers_env.items():
            if not re.match(_ENV_NAME, var):
                raise ValueError(f"headers_env.{header}: {var!r} is not an environment variable name")
        return self


class EmailChannelConfig(_Strict):
    """Plain-text e-mail through SMTP. Credentials only by environment variable name."""

    host: str
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = True
    ssl: bool = Field(False, description="SMTP over TLS from the start (port 465); excludes starttls.")
    username_env: str | None = Field(None, pattern=_ENV_NAME)
    password_env: str | None = Field(None, pattern=_ENV_NAME)
    sender: str = Field(description="The From address.")
    to: tuple[str, ...] = Field(min_length=1)
    timeout_seconds: float = Field(10, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> EmailChannelConfig:
        if self.ssl and self.starttls:
            raise ValueError("ssl and starttls exclude each other: set starttls: false with ssl: true")
        if (self.username_env is None) != (self.password_env is None):
            raise ValueError("give both username_env and password_env, or neither")
        return self


class SnsChannelConfig(_Strict):
    """Publish to an AWS SNS topic (needs `pip install 'retail-etl[aws]'`); AWS credentials as usual."""

    topic_arn: str = Field(pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]+$")
    region: str | None = Field(None, description="Default: the topic ARN's region.")
    endpoint_url: str | None = Field(None, description="Another endpoint (LocalStack, moto, a VPC endpoint).")


class ChannelConfig(_Strict):
    """One channel: a mapping with exactly one of console, webhook, email, sns (``- console`` is enough)."""

    console: ConsoleChannelConfig | None = None
    webhook: WebhookChannelConfig | None = None
    email: EmailChannelConfig | None = None
    sns: SnsChannelConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: object) -> object:
        if isinstance(v, str):
            return {v: {}}
        if isinstance(v, dict):
            return {k: ({} if value is None else value) for k, value in v.items()}
        return v

    @model_validator(mode="after")
    def _exactly_one(self) -> ChannelConfig:
        if len(self.model_fields_set) != 1:
            raise ValueError("a channel is exactly one of console, webhook, email, sns")
        return self

    @property
    def type(self) -> str:
        (kind,) = self.model_fields_set
        return kind


class NotificationsConfig(_Strict):
    """Where alerts go (step failed, circuit open, quarantine rate warning, optional success summary)."""

    channels: tuple[ChannelConfig, ...] = ()
    on_success: bool = Field(False, description="Also send a summary when an execution succeeds.")
    dedup_window_seconds: float = Field(
        86400, ge=0, description="Send the same (kind, job, rule, partition) alert at most once in this window."
    )


class MartConfig(_Strict):
    """A declared analytics mart over ``sales_enriched`` (see docs/metrics.md, *Declared marts*)."""

    grain: tuple[str, ...] = Field((), description="Columns of sales_enriched or declared attributes to group by.")
    time: Literal["day", "week", "month", "all"] = Field(
        "day", description="Time grain: one row per group and day, ISO week, month, or over all time.")
    measures: tuple[str, ...] = Field(min_length=1, description="Measure names from docs/metrics.md.")


class Config(_Strict):
    """The whole ``retail-etl.yaml``."""

    lake: LakeConfig = LakeConfig()
    engine: EngineConfig = EngineConfig()
    sources: dict[str, SourceConfig]
    workflow: WorkflowConfig = WorkflowConfig()
    notifications: NotificationsConfig = NotificationsConfig()
    marts: dict[str, MartConfig] = Field(default_factory=dict, description="Declared marts, by table name.")
    project_dir: Path = Field(Path("."), exclude=True, description="Set by the loader: the config file's folder.")

    def lake_root(self) -> str:
        root = self.lake.root
        if "://" in root or Path(root).is_absolute():
            return root
        return str((self.project_dir / root).resolve())

    def source(self, name: str) -> SourceConfig:
        try:
            return self.sources[name]
        except KeyError:
            from retail_etl.errors import ConfigError

            raise ConfigError(
                f"unknown source {name!r}", hint=f"declared sources: {', '.join(sorted(self.sources))}"
            ) from None

    def sources_of(self, entity: str) -> dict[str, SourceConfig]:
        return {n: s for n, s in self.sources.items() if s.entity == entity}
