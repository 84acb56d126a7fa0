"""What each step did, as typed values that survive a round trip through JSON.

The runner stores a step's result with its attempt (``step_runs.result``), so a resume, a
scheduler or a web page can read back what a step of any execution did; the run summary is built
from them (:class:`RunResult`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from retail_etl.jobs.transform import TransformFigures
from retail_etl.jobs.validate import RuleResult, ValidationResult


def _dates(values: list[str]) -> list[dt.date]:
    return [dt.date.fromisoformat(v) for v in values]


def _iso(dates: list[dt.date]) -> list[str]:
    return [d.isoformat() for d in dates]


@dataclass(frozen=True)
class RunInputs:
    """An execution's input, as every step reads it: which raw files to process and whether to
    bookmark them (``enable``, ``pause`` or ``disable``, see :func:`retail_etl.pipeline.run`)."""

    ingest_date: dt.date | None = None
    bookmarks: str = "enable"

    @classmethod
    def from_request(cls, request: dict[str, Any]) -> RunInputs:
        day = request.get("ingest_date")
        return cls(dt.date.fromisoformat(day) if day else None, request.get("bookmarks", "enable"))

    def to_request(self) -> dict[str, str]:
        """The execution input the runner records (defaults left out)."""
        request = {"ingest_date": self.ingest_date.isoformat()} if self.ingest_date else {}
        if self.bookmarks != "enable":
            request["bookmarks"] = self.bookmarks
        return request


@dataclass(frozen=True)
class SourceFigures:
    """One source's validation: rows read, valid and quarantined, and each check's failures."""

    source: str
    files: list[str]
    rows_read: int
    rows_valid: int
    rows_quarantined: int
    rows_unparseable: int
    blank_lines: int
    seconds: float
    rules: list[RuleResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def quarantine_rate(self) -> float:
        return self.rows_quarantined / self.rows_read if self.rows_read else 0.0

    @classmethod
    def of(cls, v: ValidationResult) -> SourceFigures:
        return cls(v.source, list(v.files), v.rows_read, v.rows_valid, v.rows_quarantined, v.rows_unparseable,
                   v.blank_lines, v.seconds, list(v.rules), list(v.warnings))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SourceFigures:
        return cls(**{**d, "rules": [RuleResult(**r) for r in d["rules"]]})


@dataclass(frozen=True)
class Replacement:
    """A delivery that replaced earlier ones: its source, file name and delivery id, the ids of the
    deliveries it replaced, the rows of theirs it removed and the rows it added (validated and
    quarantined by validate, in both counts)."""

    source: str
    file: str
    delivery_id: str
    replaced: list[str]
    rows_removed: int
    rows_added: int


@dataclass(frozen=True)
class ValidateResult:
    """The validate step: files ingested by source, each source's figures, the sale dates journaled
    for transform, the replacements made."""

    ingested: dict[str, list[str]] = field(default_factory=dict)
    sources: list[SourceFigures] = field(default_factory=list)
    dates: list[dt.date] = field(default_factory=list)
    replacements: list[Replacement] = field(default_factory=list)

    @property
    def rows_in(self) -> int:
        return sum(s.rows_read for s in self.sources)

    @property
    def rows_out(self) -> int:
        return sum(s.rows_valid for s in self.sources)

    @property
    def rows_quarantined(self) -> int:
        return sum(s.rows_quarantined for s in self.sources)

    def details(self) -> dict[str, Any]:
        files = {"files": sum(len(s.files) for s in self.sources)}
        return {**files, "replacements": [asdict(r) for r in self.replacements]} if self.replacements else files

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "dates": _iso(self.dates)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ValidateResult:
        return cls(d["ingested"], [SourceFigures.from_dict(s) for s in d["sources"]], _dates(d["dates"]),
                   [Replacement(**r) for r in d.get("replacements", [])])


@dataclass(frozen=True)
class TransformResult:
    """The transform step: the sale dates it re-derived and each source's figures (totals as properties)."""

    dates: list[dt.date] = field(default_factory=list)
    sources: dict[str, TransformFigures] = field(default_factory=dict)

    def _total(self, name: str) -> int:
        return sum(getattr(f, name) for f in self.sources.values())

    @property
    def lines_in(self) -> int:
        return self._total("lines_in")

    @property
    def enriched(self) -> int:
        return self._total("enriched")

    @property
    def duplicates(self) -> int:
        return self._total("duplicates")

    @property
    def unknown_products(self) -> int:
        return self._total("unknown_products")

    rows_in = lines_in
    rows_out = enriched

    @property
    def rows_quarantined(self) -> int:
        return self.duplicates + self.unknown_products

    def details(self) -> dict[str, Any]:
        return {"dates": len(self.dates)}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "dates": _iso(self.dates)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TransformResult:
        return cls(_dates(d["dates"]), {k: TransformFigures(**v) for k, v in d["sources"].items()})


@dataclass(frozen=True)
class AnalyticsResult:
    """The analytics step: the sale dates it refreshed and the rows written to each mart."""

    dates: list[dt.date] = field(default_factory=list)
    marts: dict[str, int] = field(default_factory=dict)

    rows_in = 0

    @property
    def rows_out(self) -> int:
        return sum(self.marts.values())

    rows_quarantined = 0

    def details(self) -> dict[str, Any]:
        return {"marts": dict(self.marts)}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "dates": _iso(self.dates)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AnalyticsResult:
        return cls(_dates(d["dates"]), dict(d["marts"]))


StepOutput = ValidateResult | TransformResult | AnalyticsResult
RESULT_TYPES: dict[str, type[ValidateResult] | type[TransformResult] | type[AnalyticsResult]] = {
    "validate": ValidateResult, "transform": TransformResult, "analytics": AnalyticsResult,
}


@dataclass(frozen=True)
class RunResult:
    """An execution as the run summary shows it: the results of the steps it ran (not those a
    resume skipped), read back from the state database."""

    run_id: str
    status: str
    seconds: float
    steps: dict[str, StepOutput] = field(default_factory=dict)
    resumed_from: str | None = None
    skipped: list[str] = field(default_factory=list)

    @property
    def validate(self) -> ValidateResult | None:
        return self.steps.get("validate")  # type: ignore[return-value]

    @property
    def sources(self) -> list[SourceFigures]:
        return self.validate.sources if self.validate else []

    @property
    def ingested(self) -> dict[str, list[str]]:
        return self.validate.ingested if self.validate else {}

    @property
    def replacements(self) -> list[Replacement]:
        return self.validate.replacements if self.validate else []

    @property
    def transform(self) -> TransformResult | None:
        """The transform step's result, if it re-derived any date."""
        t = self.steps.get("transform")
        return t if isinstance(t, TransformResult) and t.dates else None

    @property
    def analytics(self) -> AnalyticsResult | None:
        a = self.steps.get("analytics")
        return a if isinstance(a, AnalyticsResult) and a.dates else None

    @property
    def dates(self) -> list[dt.date]:
        """The sale dates re-derived: by transform, or else by analytics."""
        done = self.transform or self.analytics
        return list(done.dates) if done else []

    @property
    def marts(self) -> dict[str, int]:
        return dict(self.analytics.marts) if self.analytics else {}

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "status": self.status, "seconds": round(self.seconds, 3),
                "resumed_from": self.resumed_from, "skipped": list(self.skipped),
                "steps": {name: r.to_dict() for name, r in self.steps.items()}}
