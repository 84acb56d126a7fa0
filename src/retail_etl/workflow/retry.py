"""Retry decisions and delays (pure; AWS Step Functions semantics)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from retail_etl.workflow.definition import Retrier, error_names, is_transient


def delay(retrier: Retrier, attempt: int, rng: random.Random) -> float:
    """Seconds to wait before retry number ``attempt`` (1 = the first retry) of ``retrier``.

    ``base = interval_seconds * backoff_rate ** (attempt - 1)``, capped at ``max_delay_seconds``;
    with ``jitter_strategy="FULL"`` the delay is ``uniform(0, base)``, otherwise ``base``.
    E.g. interval 2, backoff 2.0: 2, 4, 8, 16, ...; with max_delay 5: 2, 4, 5, 5, ...
    """
    if attempt < 1:
        raise ValueError(f"attempt is 1-based, got {attempt}")
    base = retrier.interval_seconds * retrier.backoff_rate ** (attempt - 1)
    if retrier.max_delay_seconds is not None:
        base = min(base, retrier.max_delay_seconds)
    return rng.uniform(0, base) if retrier.jitter_strategy == "FULL" else float(base)


def select_retrier(retriers: Sequence[Retrier], exc: BaseException, used: Sequence[int]) -> int | None:
    """Index of the retrier that retries ``exc`` now, or ``None`` when the error goes to Catch.

    ``used[i]`` counts the retries retrier ``i`` has made. Permanent errors are never retried. The first
    retrier whose ``error_equals`` matches decides; once its attempts are used up the error is caught,
    even if a later retrier would also match (as in Step Functions).
    """
    if not is_transient(exc):
        return None
    names = error_names(exc)
    for index, retrier in enumerate(retriers):
        if retrier.matches(names):
            return index if used[index] < retrier.max_attempts else None
    return None
