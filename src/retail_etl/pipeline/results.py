"""What each step did, as typed values that survive a round trip through JSON.

The runner stores a step's result with its attempt (``step_runs.result``), so a resume, a
scheduler or a web page can read back what a step of any execution did; the run summary is built
from them (:class:`RunResult`).
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from retail_etl.errors import InputError
from retail_etl.jobs.transform import TransformFigures
from retail_etl.jobs.validate import RuleResult, ValidationResult


def _dates(values: list[str]) -> list[dt.date]:
    return [dt.date.fromisoformat(v) for v in values]


def _iso(dates: list[dt.date]) -> list[str]:
    return [d.isoformat() for d in dates]


#: The bookmark modes of an execution (see :func:`retail_etl.pipeline.run`).
BOOKMARK_MODES = ("enable", "pause", "disable")
#: The keys of an execution input, as Step Functions' start-execution would pass them.
INPUT_KEYS = ("date", "ingest_date", "bookmarks")


@dataclass(frozen=True)
class RunInputs:
    """An execution's input, as every step reads it: the sale date to re-derive (``date``), which
    raw files to process (``ingest_date``) and whether to bookmark them (``enable``, ``pause`` or
    ``disable``, see :func:`retail_etl.pipeline.run`)."""

    ingest_date: dt.date | None = None
    bookmarks: str = "enable"
    date: dt.date | None = None

    @classmethod
    def from_request(cls, request: Mapping[str, Any]) -> RunInputs:
        """The inputs of a recorded execution input (or of one given by a user), checked: an
        unknown key, a date that is not ``YYYY-MM-DD`` or an unknown bookmark mode is an
        :class:`~retail_etl.errors.InputError`."""
        if not isinstance(request, Mapping):
            raise InputError(f"the execution input must be a JSON object, got {_json_kind(request)}",
                             hint='e.g. {"date": "2024-01-15"}')
        unknown = [k for k in request if k not in INPUT_KEYS]
        if unknown:
            key = unknown[0]
            close = difflib.get_close_matches(str(key), INPUT_KEYS, n=1)
            raise InputError(
                f"unknown key {key!r} in the execution input" + (f"; did you mean {close[0]!r}?" if close else ""),
                hint=f"the keys are {', '.join(INPUT_KEYS)}",
            )
        bookmarks = request.get("bookmarks", "enable")
        if bookmarks not in BOOKMARK_MODES:
            raise InputError(f"bookmarks: {bookmarks!r} is not a bookmark mode",
                             hint=f"choose {', '.join(BOOKMARK_MODES)}")
        return cls(_input_date(request, "ingest_date"), bookmarks, _input_date(request, "date"))

    @classmethod
    def from_json(cls, text: str) -> RunInputs:
        """The inputs of an execution input given as JSON text (``{"date": "2024-01-15"}``)."""
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"the execution input is not valid JSON: {exc}",
                             hint='e.g. {"date": "2024-01-15"}') from None
        return cls.from_request(document)

    def to_request(self) -> dict[str, str]:
        """The execution input the runner records (defaults left out)."""
        request = {"date": self.date.isoformat()} if self.date else {}
        if self.ingest_date:
            request["ingest_date"] = self.ingest_date.isoformat()
        if self.bookmarks != "enable":
            request["bookmarks"] = self.bookmarks
        return request


def _input_date(request: Mapping[str, Any], key: str) -> dt.date | None:
    value = request.get(key)
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InputError(f"{key}: {json.dumps(value)} is not a date", hint='write it as "YYYY-MM-DD"') from None


def _json_kind(value: Any) -> str:
    kinds = ((bool, "a boolean"), (int, "a number"), (float, "a number"), (str, "a string"), (list, "an array"))
    return next((name for kind, name in kinds if isinstance(value, kind)), "null")


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
    for transform, ``notices``: by source, what the run found amiss without figures to show it
    (no new file, a glob matching nothing, a late delivery), and the replacements made."""

    ingested: dict[str, list[str]] = field(default_factory=dict)
    sources: list[SourceFigures] = field(default_factory=list)
    dates: list[dt.date] = field(default_factory=list)
    notices: dict[str, list[str]] = field(default_factory=dict)
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
                   {k: list(v) for k, v in d.get("notices", {}).items()},
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
    def notices(self) -> dict[str, list[str]]:
        """By source, what validate found amiss without figures to show it (see :class:`ValidateResult`)."""
        return self.validate.notices if self.validate else {}

    @property
    def replacements(self) -> list[Replacement]:
        """The deliveries that replaced earlier ones (see :class:`ValidateResult`)."""
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
