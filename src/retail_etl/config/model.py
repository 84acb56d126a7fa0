"""Configuration schema (``retail-etl.yaml``), validated with pydantic.

Unknown keys are errors: a typo must not silently fall back to a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


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

    column: str
    format: str | None = Field(
        None, description="strftime-style format for dates and timestamps, e.g. '%d/%m/%Y %H:%M'."
    )


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


class SourceConfig(_Strict):
    """A declared source: which files, how to read them, how they map to the canonical model."""

    entity: Literal["sales", "products"]
    path: str = Field(description="Glob of input files, relative to the project folder.")
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
    returns: bool = Field(True, description="Negative quantities are returns (kept), not errors.")
    unknown_products: Literal["quarantine", "keep"] = Field(
        "quarantine", description="A sales line whose product is not in the products reference."
    )
    rules: tuple[RuleSpec | str, ...] = ()
    thresholds: Thresholds = Thresholds()

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


class LakeConfig(_Strict):
    root: str = "lake"
    namespace: str = "retail_etl"


class EngineConfig(_Strict):
    name: Literal["duckdb"] = "duckdb"
    memory_limit: str = "2GB"
    threads: int | None = Field(None, ge=1)


class Config(_Strict):
    """The whole ``retail-etl.yaml``."""

    lake: LakeConfig = LakeConfig()
    engine: EngineConfig = EngineConfig()
    sources: dict[str, SourceConfig]
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
