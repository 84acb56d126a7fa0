"""Source freshness (pure): is a source's newest delivery older than its ``expect`` allows?

Like dbt's source freshness, measured from the ingest time of the newest delivery in the raw
manifest: older than ``every``, a run warns; older than ``fail``, a run fails its quality gate.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from retail_etl.config.model import Expect, duration_seconds


@dataclass(frozen=True)
class Lateness:
    """A source whose newest delivery is older than its expectation allows."""

    source: str
    level: str  # warn | fail
    newest: dt.datetime | None  # None: it never delivered
    allowed: str  # the duration it exceeded, as configured

    @property
    def message(self) -> str:
        if self.newest is None:
            return f"no delivery yet; one is expected every {self.allowed}"
        return (f"newest delivery ingested at {self.newest.isoformat(timespec='seconds')}, "
                f"older than {self.allowed}")


def lateness(source: str, expect: Expect, newest: dt.datetime | None, now: dt.datetime) -> Lateness | None:
    """How late ``source`` is at ``now`` given the ingest time of its ``newest`` delivery, or None."""
    age = None if newest is None else (now - newest).total_seconds()
    if expect.fail is not None and (age is None or age > duration_seconds(expect.fail)):
        return Lateness(source, "fail", newest, expect.fail)
    if age is None or age > duration_seconds(expect.every):
        return Lateness(source, "warn", newest, expect.every)
    return None


def newest_ingest(ingested_at: list[str]) -> dt.datetime | None:
    """The latest of ISO timestamps (the manifest's ``ingested_at``), as an aware UTC datetime."""
    times = [_utc(dt.datetime.fromisoformat(t)) for t in ingested_at]
    return max(times) if times else None


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
