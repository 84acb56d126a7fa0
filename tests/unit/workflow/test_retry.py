"""Retry math and retrier selection, with exact numbers."""

from __future__ import annotations

import random

import pytest

from retail_etl.errors import LakeBusyError, QualityGateError
from retail_etl.workflow import Retrier
from retail_etl.workflow.retry import delay, select_retrier


def test_exponential_backoff() -> None:
    r = Retrier(("Transient",), interval_seconds=2, backoff_rate=2.0)
    assert [delay(r, n, random.Random(0)) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]


def test_backoff_rate_one_is_constant_and_fractions_work() -> None:
    assert [delay(Retrier(("X",), 0.5, backoff_rate=1.0), n, random.Random()) for n in (1, 5)] == [0.5, 0.5]
    assert delay(Retrier(("X",), 1, backoff_rate=1.5), 3, random.Random()) == 2.25


def test_max_delay_caps() -> None:
    r = Retrier(("X",), interval_seconds=2, backoff_rate=2.0, max_delay_seconds=5)
    assert [delay(r, n, random.Random()) for n in (1, 2, 3, 10)] == [2.0, 4.0, 5.0, 5.0]


def test_full_jitter_is_uniform_below_the_capped_delay() -> None:
    r = Retrier(("X",), interval_seconds=2, backoff_rate=2.0, max_delay_seconds=6, jitter_strategy="FULL")
    expected_rng = random.Random(42)
    got = [delay(r, n, random.Random(42)) for n in (1, 2, 3)]
    assert got == [expected_rng.uniform(0, 2), random.Random(42).uniform(0, 4), random.Random(42).uniform(0, 6)]
    rng = random.Random(1)
    samples = [delay(r, 3, rng) for _ in range(500)]
    assert all(0 <= s <= 6 for s in samples) and max(samples) > 5 and min(samples) < 1


def test_attempt_is_one_based() -> None:
    with pytest.raises(ValueError, match="1-based"):
        delay(Retrier(("X",)), 0, random.Random())


def test_first_matching_retrier_decides_even_when_exhausted() -> None:
    retriers = (Retrier(("LakeBusyError",), max_attempts=1), Retrier(("Transient",), max_attempts=5))
    assert select_retrier(retriers, LakeBusyError("busy"), [0, 0]) == 0
    assert select_retrier(retriers, LakeBusyError("busy"), [1, 0]) is None
    assert select_retrier(retriers, OSError("disk"), [1, 0]) == 1
    assert select_retrier(retriers, OSError("disk"), [1, 5]) is None


def test_max_attempts_zero_never_retries() -> None:
    assert select_retrier((Retrier(("States.ALL",), max_attempts=0),), OSError(), [0]) is None


def test_permanent_errors_are_never_retried_even_if_matched() -> None:
    retriers = (Retrier(("States.ALL",), max_attempts=10),)
    assert select_retrier(retriers, QualityGateError("gate"), [0]) is None
    assert select_retrier(retriers, ValueError("bug"), [0]) is None
    assert select_retrier(retriers, OSError("io"), [0]) == 0


def test_no_matching_retrier() -> None:
    assert select_retrier((Retrier(("LakeBusyError",)),), OSError(), [0]) is None
    assert select_retrier((), OSError(), []) is None
