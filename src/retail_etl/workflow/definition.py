"""Workflow definitions as data: ordered steps with Retry, Catch and timeouts, in AWS Step Functions terms.

The names an error matches in ``error_equals``:

- ``States.ALL``: every error (must be alone in its list, and its retrier or catcher must be last);
- ``States.Timeout``: a step that ran past its ``timeout_seconds`` (:class:`StepTimeout`);
- ``States.TaskFailed``: every error except ``States.Timeout`` and ``States.Runtime`` (as in AWS);
- ``States.Runtime``: the runner itself could not process a step (it returned something other than a
  step result, :class:`StatesRuntimeError`); as in AWS, never retried, even by a ``States.ALL`` retrier;
- ``Transient`` or ``Permanent``: the error's marker (see :func:`is_transient`);
- the error's class name and the names of its base classes, e.g. ``LakeBusyError``, ``TransientError``, ``OSError``.

Product rule: a permanent error is never retried, even when a retrier matches it; it goes straight to Catch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from retail_etl import errors
from retail_etl.config.states import (
    STATES_ALL,
    STATES_RUNTIME,
    STATES_TASK_FAILED,
    STATES_TIMEOUT,
    check_all_last,
    check_error_equals,
    check_retrier_limits,
)
from retail_etl.errors import ConfigError, PermanentError, TransientError

if TYPE_CHECKING:
    from retail_etl.config.model import RetrierConfig, WorkflowConfig

ALL = STATES_ALL
TIMEOUT = STATES_TIMEOUT
TASK_FAILED = STATES_TASK_FAILED
RUNTIME = STATES_RUNTIME
TRANSIENT = "Transient"
PERMANENT = "Permanent"
NOTIFY_FAILURE = "NotifyFailure"
_NOTIFY_WITHOUT_ERROR = "NotifyFailureErrorDiscarded"
_FAILED_WITHOUT_ERROR = "ExecutionFailedErrorDiscarded"


class StepTimeout(TransientError):
    """A step ran longer than its ``timeout_seconds``. Its error name is ``States.Timeout``."""


class StatesRuntimeError(PermanentError):
    """The runner could not process what a step did (``States.Runtime``): never retried."""


def error_name(exc: BaseException) -> str:
    """The name recorded as an execution's or attempt's ``error``."""
    if isinstance(exc, StepTimeout):
        return TIMEOUT
    return RUNTIME if isinstance(exc, StatesRuntimeError) else type(exc).__name__


def is_transient(exc: BaseException) -> bool:
    """Whether retrying may help (see :func:`retail_etl.errors.is_transient`: the marker of a
    retail-etl error, the errno of an ``OSError``, SQLite's "database is locked")."""
    return errors.is_transient(exc)


def error_names(exc: BaseException) -> frozenset[str]:
    """Every name in ``error_equals`` that matches ``exc``."""
    names = {ALL, TRANSIENT if is_transient(exc) else PERMANENT}
    if isinstance(exc, StepTimeout):
        names.add(TIMEOUT)
    else:
        names.add(RUNTIME if isinstance(exc, StatesRuntimeError) else TASK_FAILED)
    names.update(cls.__name__ for cls in type(exc).__mro__ if cls is not object)
    return frozenset(names)


def _check_order(items: Sequence[Retrier | Catcher], what: str) -> None:
    check_all_last([item.error_equals for item in items], what)


@dataclass(frozen=True)
class Retrier:
    """A Step Functions retrier: which errors to retry, how often and how long to wait (AWS defaults)."""

    error_equals: tuple[str, ...]
    interval_seconds: float = 1
    max_attempts: int = 3
    backoff_rate: float = 2.0
    max_delay_seconds: float | None = None
    jitter_strategy: Literal["FULL", "NONE"] = "NONE"

    def __post_init__(self) -> None:
        object.__setattr__(self, "error_equals", check_error_equals(self.error_equals, "retrier"))
        if not self.interval_seconds > 0:
            raise ValueError(f"retrier: interval_seconds must be > 0, got {self.interval_seconds}")
        if not isinstance(self.max_attempts, int) or self.max_attempts < 0:
            raise ValueError(f"retrier: max_attempts must be an integer >= 0, got {self.max_attempts!r}")
        if not self.backoff_rate >= 1:
            raise ValueError(f"retrier: backoff_rate must be >= 1.0, got {self.backoff_rate}")
        if self.max_delay_seconds is not None and not self.max_delay_seconds > 0:
            raise ValueError(f"retrier: max_delay_seconds must be > 0, got {self.max_delay_seconds}")
        check_retrier_limits(self.interval_seconds, self.max_attempts, self.max_delay_seconds)
        if self.jitter_strategy not in ("FULL", "NONE"):
            raise ValueError(f"retrier: jitter_strategy must be FULL or NONE, got {self.jitter_strategy!r}")

    def matches(self, names: frozenset[str]) -> bool:
        return any(name in names for name in self.error_equals)


@dataclass(frozen=True)
class Catcher:
    """Where a step's error goes once retries are over: the failure notification, then the end."""

    error_equals: tuple[str, ...]
    next_state: str = NOTIFY_FAILURE
    result_path: str | None = "$.error"  # None: the error is discarded and the state's input passes on

    def __post_init__(self) -> None:
        object.__setattr__(self, "error_equals", check_error_equals(self.error_equals, "catcher"))
        if self.next_state != NOTIFY_FAILURE:
            raise ValueError(f"catcher: next_state must be {NOTIFY_FAILURE!r}, got {self.next_state!r}")
        if self.result_path is not None and not self.result_path.startswith("$"):
            raise ValueError(f"catcher: result_path must be a JSONPath starting with '$', got {self.result_path!r}")

    def matches(self, names: frozenset[str]) -> bool:
        return any(name in names for name in self.error_equals)


@dataclass(frozen=True)
class StepDef:
    """One Task state: its name, optional timeout, retriers and catchers (first match wins)."""

    name: str
    timeout_seconds: float | None = None
    retry: tuple[Retrier, ...] = ()
    catch: tuple[Catcher, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"step names must be non-empty strings, got {self.name!r}")
        if self.name == NOTIFY_FAILURE:
            raise ValueError(f"{NOTIFY_FAILURE!r} is reserved for the failure notification")
        if self.timeout_seconds is not None and not self.timeout_seconds > 0:
            raise ValueError(f"step {self.name!r}: timeout_seconds must be > 0, got {self.timeout_seconds}")
        object.__setattr__(self, "retry", tuple(self.retry))
        object.__setattr__(self, "catch", tuple(self.catch))
        _check_order(self.retry, f"step {self.name!r} retry")
        _check_order(self.catch, f"step {self.name!r} catch")

    def catcher_for(self, exc: BaseException) -> Catcher | None:
        names = error_names(exc)
        return next((c for c in self.catch if c.matches(names)), None)


@dataclass(frozen=True)
class WorkflowDef:
    """A named sequence of steps, run in order."""

    name: str
    steps: tuple[StepDef, ...]
    comment: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"workflow names must be non-empty strings, got {self.name!r}")
        object.__setattr__(self, "steps", tuple(self.steps))
        if not self.steps:
            raise ValueError(f"workflow {self.name!r} has no steps")
        names = [s.name for s in self.steps]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"workflow {self.name!r}: duplicate step names {', '.join(duplicates)}")

    @property
    def step_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.steps)


DEFAULT_RETRY = (
    Retrier((TRANSIENT,), interval_seconds=2, max_attempts=3, backoff_rate=2.0, max_delay_seconds=60,
            jitter_strategy="FULL"),
)
DEFAULT_CATCH = (Catcher((ALL,)),)


def default_workflow(step_names: Sequence[str], name: str = "retail-etl") -> WorkflowDef:
    """The steps ``step_names``, in order, each retrying transient errors 3 times (2 s, 4 s, 8 s, full
    jitter, at most 60 s) and catching everything."""
    steps = tuple(StepDef(n, retry=DEFAULT_RETRY, catch=DEFAULT_CATCH) for n in step_names)
    return WorkflowDef(name, steps, comment="retail-etl batch: " + " -> ".join(step_names))


def retriers_from_config(items: Sequence[RetrierConfig]) -> tuple[Retrier, ...]:
    """Retriers from their YAML form (raises ``ValueError`` like the constructors)."""
    retriers = tuple(Retrier(**item.model_dump()) for item in items)
    _check_order(retriers, "retry")
    return retriers


def definition_from_config(config: WorkflowConfig, step_names: Sequence[str]) -> WorkflowDef:
    """The workflow of ``config.workflow`` over the steps ``step_names`` (in order, as the caller
    defines them): defaults from :func:`default_workflow`, per-step overrides."""
    unknown = sorted(set(config.steps) - set(step_names))
    if unknown:
        raise ConfigError(
            f"unknown step {unknown[0]!r}", location=f"workflow.steps.{unknown[0]}",
            hint=f"the steps are {', '.join(step_names)}",
        )
    default_retry = DEFAULT_RETRY if config.retry is None else retriers_from_config(config.retry)
    steps = []
    for name in step_names:
        override = config.steps.get(name)
        retry = default_retry
        timeout = config.timeout_seconds
        if override is not None:
            retry = retry if override.retry is None else retriers_from_config(override.retry)
            timeout = override.timeout_seconds or timeout
        steps.append(StepDef(name, timeout_seconds=timeout, retry=retry, catch=DEFAULT_CATCH))
    return WorkflowDef(config.name, tuple(steps), comment="retail-etl batch: " + " -> ".join(step_names))


def to_asl(
    definition: WorkflowDef,
    *,
    topic_arn: str = "${AlertsTopicArn}",
    job_names: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The definition in Amazon States Language: one Glue job Task per step, an SNS notify Task, a Fail state.

    Seconds are rounded up to whole seconds (ASL wants positive integers). Error names other than
    ``States.*`` are passed through: in AWS they must be the names the Glue tasks report.
    """
    states: dict[str, Any] = {}
    for index, step in enumerate(definition.steps):
        state: dict[str, Any] = {
            "Type": "Task",
            "Resource": "arn:aws:states:::glue:startJobRun.sync",
            "Parameters": {"JobName": (job_names or {}).get(step.name, f"{definition.name}-{step.name}")},
        }
        if step.timeout_seconds is not None:
            state["TimeoutSeconds"] = _whole(step.timeout_seconds)
        if step.retry:
            state["Retry"] = [_asl_retrier(r) for r in step.retry]
        if step.catch:
            state["Catch"] = [
                {"ErrorEquals": list(c.error_equals), "ResultPath": c.result_path,
                 "Next": c.next_state if c.result_path is not None else _NOTIFY_WITHOUT_ERROR}
                for c in step.catch
            ]
        if index + 1 < len(definition.steps):
            state["Next"] = definition.steps[index + 1].name
        else:
            state["End"] = True
        states[step.name] = state
    states[NOTIFY_FAILURE] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::sns:publish",
        "Parameters": {
            "TopicArn": topic_arn,
            "Subject": f"{definition.name}: a step failed",
            "Message.$": "States.JsonToString($.error)",
        },
        "ResultPath": None,
        "Catch": [{"ErrorEquals": [ALL], "Next": "ExecutionFailed", "ResultPath": None}],
        "Next": "ExecutionFailed",
    }
    states["ExecutionFailed"] = {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}
    if any(c.result_path is None for step in definition.steps for c in step.catch):
        # A catcher with ResultPath null discards the error, so its alert and its Fail cannot quote it.
        states[_NOTIFY_WITHOUT_ERROR] = {
            **states[NOTIFY_FAILURE],
            "Parameters": {"TopicArn": topic_arn, "Subject": f"{definition.name}: a step failed",
                           "Message": f"{definition.name}: a step failed; its error was discarded (ResultPath null)"},
            "Catch": [{"ErrorEquals": [ALL], "Next": _FAILED_WITHOUT_ERROR, "ResultPath": None}],
            "Next": _FAILED_WITHOUT_ERROR,
        }
        states[_FAILED_WITHOUT_ERROR] = {"Type": "Fail", "Error": STATES_TASK_FAILED,
                                         "Cause": "a step failed; its catcher discarded the error"}
    asl: dict[str, Any] = {"StartAt": definition.steps[0].name, "States": states}
    if definition.comment:
        asl = {"Comment": definition.comment, **asl}
    return asl


def _asl_retrier(r: Retrier) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ErrorEquals": list(r.error_equals),
        "IntervalSeconds": _whole(r.interval_seconds),
        "MaxAttempts": r.max_attempts,
        "BackoffRate": r.backoff_rate,
    }
    if r.max_delay_seconds is not None:
        out["MaxDelaySeconds"] = _whole(r.max_delay_seconds)
    if r.jitter_strategy != "NONE":
        out["JitterStrategy"] = r.jitter_strategy
    return out


def _whole(seconds: float) -> int:
    return max(1, math.ceil(seconds))
