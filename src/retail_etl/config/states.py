"""Step Functions' error names and the rules for ``error_equals`` lists: pure, shared by the
configuration schema and the workflow definition (which must not import each other's heavy parts)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

# The error names of AWS Step Functions that the local runner raises (see retail_etl.workflow.definition).
STATES_ALL = "States.ALL"
STATES_TIMEOUT = "States.Timeout"
STATES_TASK_FAILED = "States.TaskFailed"
STATES_RUNTIME = "States.Runtime"
STATES_NAMES = (STATES_ALL, STATES_TIMEOUT, STATES_TASK_FAILED, STATES_RUNTIME)

# Step Functions' upper limits on a retrier's fields; a larger value is refused by AWS, so it is refused
# when the configuration loads rather than at deploy time.
MAX_INTERVAL_SECONDS = 99_999_999
MAX_MAX_ATTEMPTS = 99_999_999
MAX_DELAY_SECONDS = 31_622_400


def check_retrier_limits(interval_seconds: float, max_attempts: int, max_delay_seconds: float | None) -> None:
    """Raise ``ValueError`` when a retrier exceeds Step Functions' limits."""
    if interval_seconds > MAX_INTERVAL_SECONDS:
        raise ValueError(f"retrier: interval_seconds must be at most {MAX_INTERVAL_SECONDS:,}, got {interval_seconds}")
    if max_attempts > MAX_MAX_ATTEMPTS:
        raise ValueError(f"retrier: max_attempts must be at most {MAX_MAX_ATTEMPTS:,}, got {max_attempts}")
    if max_delay_seconds is not None and max_delay_seconds > MAX_DELAY_SECONDS:
        raise ValueError(
            f"retrier: max_delay_seconds must be at most {MAX_DELAY_SECONDS:,} (366 days), got {max_delay_seconds}"
        )


def check_error_equals(value: Iterable[str] | str, what: str) -> tuple[str, ...]:
    """An ``error_equals`` list as Step Functions accepts it (raises ``ValueError`` otherwise)."""
    names = (value,) if isinstance(value, str) else tuple(value)
    if not names:
        raise ValueError(f"{what}: error_equals needs at least one error name")
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{what}: error names must be non-empty strings, got {name!r}")
        if name.startswith("States.") and name not in STATES_NAMES:
            raise ValueError(f"{what}: unknown error name {name!r}; the runner raises {', '.join(STATES_NAMES)}")
    if STATES_ALL in names and len(names) > 1:
        raise ValueError(f"{what}: {STATES_ALL} must be the only name in its error_equals")
    return names


def check_all_last(error_lists: Sequence[Sequence[str]], what: str) -> None:
    """A retrier or catcher matching ``States.ALL`` must be the last of its list."""
    for names in error_lists[:-1]:
        if STATES_ALL in names:
            raise ValueError(f"{what}: the {STATES_ALL} entry must be the last one")
