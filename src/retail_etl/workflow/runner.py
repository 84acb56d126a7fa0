"""The runner: executes a :class:`~retail_etl.workflow.definition.WorkflowDef` step by step, with
retries, timeouts, Catch -> notification, a circuit breaker and a full record in the state database.

Steps are plain callables ``fn(ctx: StepContext) -> StepResult``; the runner knows nothing of what they do.
Time is injected (``clock`` for durations, ``wall`` for timestamps, ``sleep`` between retries, ``rng``
for jitter), so tests run without waiting.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import secrets
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from retail_etl.errors import PermanentError, RetailEtlError, note_step
from retail_etl.lake.storage import LOGS_DIR, STATE_DB, Storage, open_storage
from retail_etl.notify import notifier_from_config
from retail_etl.notify.alert import CIRCUIT_OPEN, STEP_FAILED, SUCCESS_SUMMARY, Alert
from retail_etl.workflow.circuit import CircuitBreaker
from retail_etl.workflow.definition import (
    StatesRuntimeError, StepDef, StepTimeout, WorkflowDef, definition_from_config, error_name, is_transient,
)
from retail_etl.workflow.logging import ExecutionLog, LogFormat, LogSettings
from retail_etl.workflow.retry import delay, select_retrier
from retail_etl.workflow.state import (
    ABORTED, FAILED, SUCCEEDED, Execution, StepRun, WorkflowState, iso, utcnow,
)

if TYPE_CHECKING:
    from retail_etl.config.model import Config
    from retail_etl.notify.notifier import Notifier


@dataclass
class StepResult:
    """What a step reports: row counts and free-form JSON-able details, and ``result``, the step's own
    typed result as JSON, recorded with the attempt so that it can be read back (``StepRun.result``)."""

    rows_in: int = 0
    rows_out: int = 0
    rows_quarantined: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None


def _no_notify(alert: Alert) -> None:
    return None


def _no_warn(event: str, **details: Any) -> None:
    return None


@dataclass
class StepContext:
    """Given to a step: the execution, its input, this attempt, a logger ``log(event, **fields)``,
    the results of the steps done before it (also across a resume), ``notify(alert)``, and
    ``warn(event, **details)``, which records a warning event in the execution's history."""

    execution_id: str
    input: dict[str, Any]
    step: str
    attempt: int
    log: Callable[..., None]
    results: Mapping[str, StepResult] = field(default_factory=dict)
    notify: Callable[[Alert], None] = _no_notify
    warn: Callable[..., None] = _no_warn


StepFn = Callable[[StepContext], StepResult]


def new_execution_id(now: dt.datetime) -> str:
    """``exec-20240115T103000Z-3f9a2c``: sortable by start time, unique by its random suffix."""
    return f"exec-{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def partition_of(input: Mapping[str, Any]) -> str:
    """An execution input as an alert partition: ``{"date": "2023-01-15"}`` -> ``date=2023-01-15``."""
    return ",".join(f"{k}={v}" for k, v in sorted(input.items()))


@contextlib.contextmanager
def deadline(seconds: float | None, step: str) -> Iterator[None]:
    """Raise :class:`StepTimeout` in the running step after ``seconds``.

    Uses ``SIGALRM``, so it is enforced only in the main thread on POSIX; elsewhere the timeout is not
    enforced. The alarm interrupts Python code and blocking calls such as ``time.sleep``, but a long call
    into native code (one DuckDB query) sees it only when it returns to Python. A step that catches every
    exception can swallow it.
    """
    if seconds is None or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _alarm(signum: int, frame: object) -> None:
        raise StepTimeout(f"step {step!r} did not finish within {seconds:g} s",
                          hint="raise its timeout_seconds or make it faster")

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _cause(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class Runner:
    """Runs a workflow definition's steps in order, recording everything in ``state``.

    A failed attempt is retried when the error is transient and a retrier has attempts left (after
    ``sleep(delay)``); otherwise the first matching catcher records ``CatchTriggered`` and sends the
    ``step_failed`` alert, and the execution ends FAILED. An error no catcher matches also fails the
    execution, without the alert (like an uncaught error in Step Functions).
    """

    def __init__(
        self,
        definition: WorkflowDef,
        steps: Mapping[str, StepFn],
        state: WorkflowState,
        *,
        notifier: Notifier | None = None,
        circuit: CircuitBreaker | None = None,
        logs: LogSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        wall: Callable[[], dt.datetime] = utcnow,
        heartbeat_seconds: float | None = 30.0,
    ) -> None:
        missing = [n for n in definition.step_names if n not in steps]
        extra = sorted(set(steps) - set(definition.step_names))
        if missing or extra:
            raise ValueError(
                f"workflow {definition.name!r} steps and functions differ: "
                f"no function for {missing or 'none'}, no step for {extra or 'none'}"
            )
        self.definition = definition
        self.steps = dict(steps)
        self.state = state
        self.notifier = notifier
        self.circuit = circuit
        self.logs = logs
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.wall = wall
        self.heartbeat_seconds = heartbeat_seconds

    def start(self, input: Mapping[str, Any] | None = None) -> Execution:
        """Run every step. Marks executions left RUNNING by dead processes ABORTED first.

        Returns the recorded execution (SUCCEEDED or FAILED); raises
        :class:`~retail_etl.workflow.circuit.CircuitOpenError` when the circuit is open, and re-raises
        ``KeyboardInterrupt`` and the like after recording the execution ABORTED.
        """
        self.state.recover_stale(self._now())
        return self._execute(dict(input or {}), first=0)

    def resume(self, execution_id: str) -> Execution:
        """Re-run a FAILED or ABORTED execution from its first step not done, as a new execution with
        ``resumed_from`` set; the steps done before are recorded as SKIPPED (with their results)."""
        self.state.recover_stale(self._now())
        previous = self.state.execution(execution_id)
        if previous.workflow != self.definition.name:
            raise PermanentError(
                f"execution {previous.id} belongs to workflow {previous.workflow!r}, not {self.definition.name!r}"
            )
        if previous.status not in (FAILED, ABORTED):
            raise PermanentError(
                f"execution {previous.id} is {previous.status}: only FAILED or ABORTED executions can be resumed"
            )
        done = previous.completed()
        first = next((i for i, n in enumerate(self.definition.step_names) if n not in done), len(self.definition.steps))
        return self._execute(previous.input, first=first, resumed_from=previous.id, done=done)

    def _now(self) -> dt.datetime:
        return self.wall().astimezone(dt.UTC)

    def _execute(
        self, input: dict[str, Any], *, first: int, resumed_from: str | None = None,
        done: Mapping[str, StepRun] | None = None,
    ) -> Execution:
        now = self._now()
        execution_id = new_execution_id(now)
        if self.circuit is not None:
            self.circuit.before_start(execution_id)
        self.state.create_execution(execution_id, self.definition.name, input, now, resumed_from)
        log = (self.logs or LogSettings()).open(execution_id, self.wall)
        run = _Run(self, execution_id, input, log, resumed_from)
        try:
            with _Heartbeat(self.state, execution_id, self.heartbeat_seconds, self._now):
                run.event("ExecutionStarted", workflow=self.definition.name, input=input, resumed_from=resumed_from)
                for step in self.definition.steps[:first]:
                    run.skip(step, (done or {})[step.name])
                failure = None
                for step in self.definition.steps[first:]:
                    failure = run.step(step)
                    if failure is not None:
                        break
                return run.finish(failure)
        except BaseException as exc:  # Ctrl-C, SystemExit, or the bookkeeping itself failed
            with contextlib.suppress(Exception):
                self.state.finish_execution(execution_id, ABORTED, self._now(), error_name(exc), _cause(exc))
                run.event("ExecutionAborted", level="error", error=error_name(exc), cause=_cause(exc))
                if self.circuit is not None:
                    self.circuit.record(execution_id, ABORTED)
            raise
        finally:
            log.close()


@dataclass
class _Failure:
    step: StepDef
    exc: Exception
    attempts: int


class _Run:
    """The bookkeeping of one execution."""

    def __init__(
        self, runner: Runner, execution_id: str, input: dict[str, Any], log: ExecutionLog, resumed_from: str | None
    ) -> None:
        self.runner = runner
        self.state = runner.state
        self.id = execution_id
        self.input = input
        self.log = log
        self.resumed_from = resumed_from
        self.results: dict[str, StepResult] = {}

    def event(self, type: str, step: str | None = None, level: str = "info", **details: Any) -> None:
        self.state.add_event(self.id, type, self.runner._now(), step, details)
        self.log(type, step=step, level=level, **details)

    def notify(self, alert: Alert, step: str | None = None) -> None:
        """Send through the notifier, recording what happened; never raises."""
        if self.runner.notifier is None:
            return
        try:
            delivery = self.runner.notifier.send(alert)
        except Exception as exc:  # a notification must not change the execution's outcome
            self.event("NotificationFailed", step, "warning", kind=alert.kind, error=f"{type(exc).__name__}: {exc}")
            return
        if delivery.suppressed:
            self.event("NotificationSuppressed", step, kind=alert.kind, key=list(alert.key))
            return
        for channel, error in delivery.failed.items():
            self.event("NotificationFailed", step, "warning", kind=alert.kind, channel=channel, error=error)
        if delivery.sent:
            self.event("NotificationSent", step, kind=alert.kind, channels=delivery.sent)

    def skip(self, step: StepDef, done: StepRun) -> None:
        self.state.skip_step(self.id, done, self.runner._now())
        self.results[step.name] = StepResult(done.rows_in or 0, done.rows_out or 0, done.rows_quarantined or 0,
                                             done.details, done.result)
        self.event("TaskStateSkipped", step.name, resumed_from=self.resumed_from)

    def step(self, step: StepDef) -> _Failure | None:
        """Run one step with its retries; the failure that ends it, or None on success."""
        runner = self.runner
        fn = runner.steps[step.name]
        self.event("TaskStateEntered", step.name)
        used = [0] * len(step.retry)
        attempt, delay_before = 0, 0.0
        while True:
            attempt += 1
            self.state.start_step(self.id, step.name, attempt, runner._now(), delay_before)
            self.event("TaskStarted", step.name, attempt=attempt)
            ctx = StepContext(
                self.id, dict(self.input), step.name, attempt,
                log=lambda event, _step=step.name, **fields: self.log(event, step=_step, **fields),
                results=dict(self.results), notify=lambda alert, _step=step.name: self.notify(alert, _step),
                warn=lambda event, _step=step.name, **details: self.event(event, _step, "warning", **details),
            )
            started = runner.clock()
            try:
                with deadline(step.timeout_seconds, step.name):
                    result = fn(ctx)
                result = _checked(result, step.name)
            except Exception as exc:
                note_step(exc, step.name)
                duration = runner.clock() - started
                error, cause = error_name(exc), _cause(exc)
                self.state.finish_step(self.id, step.name, attempt, FAILED, runner._now(), duration,
                                       error=error, cause=cause)
                self.event("TaskTimedOut" if isinstance(exc, StepTimeout) else "TaskFailed", step.name, "warning",
                           attempt=attempt, error=error, cause=cause, transient=is_transient(exc),
                           duration_s=round(duration, 3))
                index = select_retrier(step.retry, exc, used)
                if index is None:
                    return _Failure(step, exc, attempt)
                used[index] += 1
                retrier = step.retry[index]
                delay_before = delay(retrier, used[index], runner.rng)
                self.event("RetryScheduled", step.name, attempt=attempt + 1, retrier=index,
                           retry=used[index], max_attempts=retrier.max_attempts, delay_s=round(delay_before, 3),
                           error=error)
                runner.sleep(delay_before)
                continue
            duration = runner.clock() - started
            self.state.finish_step(
                self.id, step.name, attempt, SUCCEEDED, runner._now(), duration,
                rows=(result.rows_in, result.rows_out, result.rows_quarantined), details=result.details,
                result=result.result,
            )
            self.results[step.name] = result
            self.event("TaskSucceeded", step.name, attempt=attempt, duration_s=round(duration, 3),
                       rows_in=result.rows_in, rows_out=result.rows_out, rows_quarantined=result.rows_quarantined)
            return None

    def finish(self, failure: _Failure | None) -> Execution:
        runner = self.runner
        workflow = runner.definition.name
        status, error, cause, exc = SUCCEEDED, None, None, None
        if failure is not None:
            status, exc = FAILED, failure.exc
            error, cause = error_name(exc), _cause(exc)
            catcher = failure.step.catcher_for(exc)
            if catcher is not None:
                self.event("CatchTriggered", failure.step.name, "error", error=error, cause=cause,
                           next_state=catcher.next_state, result_path=catcher.result_path)
                self.notify(Alert(
                    kind=STEP_FAILED, job=workflow, rule=failure.step.name, partition=partition_of(self.input),
                    severity="error", title=f"{workflow}: step {failure.step.name} failed",
                    message=f"{error}: {cause}",
                    details={"execution_id": self.id, "step": failure.step.name, "attempts": failure.attempts,
                             "error": error, "cause": cause, "input": self.input},
                ), failure.step.name)
        if runner.circuit is not None and runner.circuit.record(self.id, status, error, cause, exc):
            circuit = runner.circuit.status()
            why = circuit.describe()
            self.event("CircuitOpened", level="error", failures=circuit.failures,
                       half_open_at=iso(circuit.half_open_at) if circuit.half_open_at else None)
            self.notify(Alert(
                kind=CIRCUIT_OPEN, job=workflow, severity="critical",
                title=f"{workflow}: circuit open, executions paused",
                message=f"{why[:1].upper()}{why[1:]}. Fix the cause, then run `retail-etl circuit reset`.",
                details={"failures": circuit.failures, "last_execution": self.id, "last_error": circuit.last_error},
            ))
        if status == SUCCEEDED and runner.notifier is not None and runner.notifier.on_success:
            self.notify(self._summary())
        self.state.finish_execution(self.id, status, runner._now(), error, cause)
        if status == SUCCEEDED:
            self.event("ExecutionSucceeded")
        else:
            self.event("ExecutionFailed", level="error", error=error, cause=cause)
        execution = self.state.execution(self.id)
        execution.exception = exc
        return execution

    def _summary(self) -> Alert:
        workflow = self.runner.definition.name
        parts = [f"{n}: {r.rows_in:,} in, {r.rows_out:,} out, {r.rows_quarantined:,} quarantined"
                 for n, r in self.results.items()]
        return Alert(
            kind=SUCCESS_SUMMARY, job=workflow, partition=self.id, severity="info",
            title=f"{workflow}: execution succeeded", message="; ".join(parts),
            details={"execution_id": self.id, "input": self.input,
                     "steps": {n: vars(r) for n, r in self.results.items()}},
        )


def _checked(result: object, step: str) -> StepResult:
    if result is None:
        return StepResult()
    if not isinstance(result, StepResult):
        raise StatesRuntimeError(f"step {step!r} returned {type(result).__name__}, expected StepResult or None")
    return result


class _Heartbeat:
    """Refreshes the execution's heartbeat every ``interval`` seconds while a step runs."""

    def __init__(self, state: WorkflowState, execution_id: str, interval: float | None,
                 now: Callable[[], dt.datetime]) -> None:
        self.state, self.execution_id, self.interval, self.now = state, execution_id, interval, now
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat {execution_id}", daemon=True)

    def _beat(self) -> None:
        assert self.interval is not None
        while not self._stop.wait(self.interval):
            # A beat that cannot be written or published (an S3 lake offline) is the next one's to do.
            with contextlib.suppress(sqlite3.Error, RetailEtlError):
                self.state.heartbeat(self.execution_id, self.now())

    def __enter__(self) -> _Heartbeat:
        if self.interval:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def runner_from_config(
    config: Config,
    steps: Mapping[str, StepFn],
    *,
    storage: Storage | None = None,
    log_format: LogFormat = "text",
    stream: TextIO | None = None,
    wall: Callable[[], dt.datetime] = utcnow,
    **kwargs: Any,
) -> Runner:
    """The runner ``retail-etl run`` uses: the definition, circuit breaker and notifications from the
    config, state in ``<lake>/_state/state.db``, logs in ``<lake>/_logs/<execution_id>.jsonl`` and on
    ``stream``. ``storage`` is the lake's (opened from the config if not given). The step names are
    the keys of ``steps``, in order; ``kwargs`` go to :class:`Runner`."""
    storage = storage or open_storage(config)
    state = workflow_state(storage)
    definition = definition_from_config(config.workflow, tuple(steps))
    cfg = config.workflow.circuit
    circuit = (
        CircuitBreaker(state, definition.name, failure_threshold=cfg.failure_threshold,
                       cooldown_seconds=cfg.cooldown_seconds, wall=wall)
        if cfg.enabled else None
    )
    return Runner(
        definition, steps, state, notifier=notifier_from_config(config.notifications, state, wall=wall),
        circuit=circuit, logs=log_settings(storage, stream, log_format), wall=wall, **kwargs,
    )


def workflow_state(storage: Storage) -> WorkflowState:
    """The workflow tables of a lake (in its state database)."""
    return WorkflowState(storage.db_path(STATE_DB), on_change=lambda: storage.push(STATE_DB))


def log_settings(storage: Storage, stream: TextIO | None = None, log_format: LogFormat = "text") -> LogSettings:
    """Execution logs in the lake's ``_logs`` folder (written locally, then published)."""
    return LogSettings(storage.local_dir(LOGS_DIR), stream, log_format,
                       on_close=lambda path: storage.push(f"{LOGS_DIR}/{path.name}"))
