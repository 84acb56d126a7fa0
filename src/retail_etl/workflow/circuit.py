"""Circuit breaker: after N consecutive failed executions a workflow stops starting new ones.

CLOSED -> (N failures) -> OPEN -> (cool-down passed) -> HALF_OPEN: one trial execution; its success
closes the circuit, its failure opens it again. ``reset()`` closes it at once. Only the states CLOSED
and OPEN are stored; HALF_OPEN is OPEN with the cool-down over. ABORTED executions do not count, nor
do failures caused by the configuration.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from retail_etl.errors import ConfigError, PermanentError
from retail_etl.notify.alert import CIRCUIT_OPEN
from retail_etl.workflow.state import (
    FAILED, RUNNING, SUCCEEDED, ExecutionNotFoundError, WorkflowState, iso, parse_time, utcnow,
)

CLOSED, OPEN, HALF_OPEN = "CLOSED", "OPEN", "HALF_OPEN"


@dataclass(frozen=True)
class CircuitStatus:
    workflow: str
    state: str
    failures: int
    failure_threshold: int
    opened_at: dt.datetime | None = None
    half_open_at: dt.datetime | None = None
    last_error: str | None = None
    last_execution: str | None = None
    trial_execution: str | None = None

    def describe(self) -> str:
        """One sentence on why the circuit is open and when it half-opens."""
        return (
            f"the circuit of workflow {self.workflow!r} opened at {iso(self.opened_at) if self.opened_at else '?'}"
            f" after {self.failures} consecutive failed execution(s) (last: {self.last_execution}, "
            f"{_first_line(self.last_error)}); it half-opens at {iso(self.half_open_at) if self.half_open_at else '?'}, "
            "when one trial execution is allowed"
        )


def _first_line(text: str | None) -> str | None:
    """An error's message without the hint lines that follow it."""
    return text.splitlines()[0] if text else text


class CircuitOpenError(PermanentError):
    """The workflow's circuit is open: no execution is started."""

    def __init__(self, status: CircuitStatus, reason: str | None = None) -> None:
        self.status = status
        super().__init__(
            f"not started: {reason or status.describe()}",
            hint="fix the cause, then `retail-etl circuit reset` to allow executions now",
        )


def counts_as_configuration(exc: BaseException | None) -> bool:
    """Whether a failure was caused by the configuration (and so is not the circuit's business)."""
    return isinstance(exc, ConfigError)


class CircuitBreaker:
    """The circuit of one workflow, kept in the state database."""

    def __init__(
        self,
        state: WorkflowState,
        workflow: str,
        *,
        failure_threshold: int = 3,
        cooldown_seconds: float = 3600,
        wall: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        if failure_threshold < 1 or cooldown_seconds <= 0:
            raise ValueError("failure_threshold must be >= 1 and cooldown_seconds > 0")
        self.state = state
        self.workflow = workflow
        self.failure_threshold = failure_threshold
        self.cooldown = dt.timedelta(seconds=cooldown_seconds)
        self.wall = wall

    def status(self) -> CircuitStatus:
        row = self.state.circuit(self.workflow) or {}
        opened_at = parse_time(row.get("opened_at"))
        state = row.get("state", CLOSED)
        half_open_at = opened_at + self.cooldown if state == OPEN and opened_at else None
        if half_open_at is not None and self._now() >= half_open_at:
            state = HALF_OPEN
        return CircuitStatus(
            self.workflow, state, row.get("failures", 0), self.failure_threshold, opened_at, half_open_at,
            row.get("last_error"), row.get("last_execution"), row.get("trial_execution"),
        )

    def before_start(self, execution_id: str) -> None:
        """Raise :class:`CircuitOpenError` unless ``execution_id`` may start (as the trial when half-open)."""
        status = self.status()
        if status.state == CLOSED:
            return
        if status.state == OPEN:
            raise CircuitOpenError(status)
        if status.trial_execution and self._running(status.trial_execution):
            raise CircuitOpenError(status, f"the circuit of workflow {self.workflow!r} is half-open and its trial "
                                           f"execution {status.trial_execution} is still running")
        self._save(status, trial_execution=execution_id)

    def record(
        self, execution_id: str, status: str, error: str | None = None, cause: str | None = None,
        exc: BaseException | None = None,
    ) -> bool:
        """Count an execution's outcome; True when this failure opened the circuit.

        A failure caused by the configuration (``exc`` a :class:`ConfigError`) does not count:
        retrying cannot fix it, and once the configuration is fixed the next run must start.
        """
        current = self.status()
        if status == SUCCEEDED:
            self.state.save_circuit(self.workflow, last_execution=execution_id)
            return False
        if status != FAILED or counts_as_configuration(exc):
            if current.trial_execution == execution_id:
                self._save(current, trial_execution=None)
            return False
        failures = current.failures + 1
        last_error = f"{error}: {cause}" if cause else error
        if current.state != CLOSED or failures >= self.failure_threshold:
            self.state.save_circuit(
                self.workflow, state=OPEN, failures=failures, opened_at=iso(self._now()), last_error=last_error,
                last_execution=execution_id,
            )
            return True
        self.state.save_circuit(self.workflow, failures=failures, last_error=last_error, last_execution=execution_id)
        return False

    def reset(self) -> CircuitStatus:
        """Close the circuit now and re-arm its alert; returns the status before."""
        before = self.status()
        self.state.save_circuit(self.workflow, last_execution=before.last_execution)
        self.state.forget_alerts(CIRCUIT_OPEN, self.workflow)
        return before

    def _save(self, status: CircuitStatus, **changes: str | None) -> None:
        fields = {
            "state": OPEN if status.state == HALF_OPEN else status.state, "failures": status.failures,
            "opened_at": iso(status.opened_at) if status.opened_at else None, "last_error": status.last_error,
            "last_execution": status.last_execution, "trial_execution": status.trial_execution,
        }
        self.state.save_circuit(self.workflow, **{**fields, **changes})

    def _running(self, execution_id: str) -> bool:
        try:
            return self.state.execution(execution_id).status == RUNNING
        except ExecutionNotFoundError:
            return False

    def _now(self) -> dt.datetime:
        return self.wall().astimezone(dt.UTC)
