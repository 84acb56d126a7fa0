"""Test doubles for the workflow runtime: injected time, scripted steps, a recording channel."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from retail_etl.notify import Alert, Notifier
from retail_etl.workflow import (
    Catcher, CircuitBreaker, LogSettings, Retrier, Runner, StepContext, StepDef, StepResult, WorkflowDef,
    WorkflowState,
)

START = dt.datetime(2024, 1, 15, 10, 30, tzinfo=dt.UTC)


class FakeTime:
    """A monotonic clock and a wall clock that only ``sleep`` (and ``advance``) move."""

    def __init__(self) -> None:
        self.mono = 100.0
        self.now = START
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.mono

    def wall(self) -> dt.datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.now += dt.timedelta(seconds=seconds)


class ListChannel:
    name = "list"

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def send(self, alert: Alert, sent_at: str) -> None:
        self.alerts.append(alert)


class Script:
    """A step that raises the given errors on its first attempts, then returns ``result``."""

    def __init__(self, *errors: BaseException, result: StepResult | None = None, took: float = 0.0,
                 time: FakeTime | None = None) -> None:
        self.errors = list(errors)
        self.result = result or StepResult(rows_in=10, rows_out=9, rows_quarantined=1)
        self.took, self.time = took, time
        self.contexts: list[StepContext] = []

    def __call__(self, ctx: StepContext) -> StepResult:
        self.contexts.append(ctx)
        if self.time is not None:
            self.time.advance(self.took)
        if len(self.contexts) <= len(self.errors):
            raise self.errors[len(self.contexts) - 1]
        return self.result

    @property
    def calls(self) -> int:
        return len(self.contexts)


def workflow(*names: str, retry: tuple[Retrier, ...] = (), timeout: float | None = None) -> WorkflowDef:
    return WorkflowDef("test-wf", tuple(
        StepDef(n, timeout_seconds=timeout, retry=retry, catch=(Catcher(("States.ALL",)),)) for n in names
    ))


def make_runner(
    tmp_path: Path,
    definition: WorkflowDef,
    steps: dict[str, Callable[[StepContext], StepResult]],
    time: FakeTime,
    *,
    channel: ListChannel | None = None,
    circuit: bool = False,
    seed: int = 7,
) -> Runner:
    import random

    state = WorkflowState(tmp_path / "_state" / "state.db")
    notifier = Notifier([channel], state=state, wall=time.wall) if channel is not None else None
    breaker = CircuitBreaker(state, definition.name, failure_threshold=3, cooldown_seconds=3600, wall=time.wall)
    return Runner(
        definition, steps, state, notifier=notifier, circuit=breaker if circuit else None,
        logs=LogSettings(tmp_path / "_logs"), clock=time.clock, sleep=time.sleep, rng=random.Random(seed),
        wall=time.wall, heartbeat_seconds=None,
    )
