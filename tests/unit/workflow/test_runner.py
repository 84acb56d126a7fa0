"""The runner: retries with injected time, Catch and notification, timeouts, resume, records and logs."""

from __future__ import annotations

import json
import random
import sqlite3
import time
from pathlib import Path

import pytest

from retail_etl.errors import LakeBusyError, QualityGateError
from retail_etl.workflow import Retrier, Runner, StepResult, WorkflowState
from retail_etl.workflow.runner import partition_of
from tests.unit.workflow.helpers import START, FakeTime, ListChannel, Script, make_runner, workflow

TRANSIENT_2_4 = (Retrier(("Transient",), interval_seconds=2, max_attempts=3, backoff_rate=2.0),)


def _events(runner: Runner, execution_id: str) -> list[str]:
    return [e.type for e in runner.state.events(execution_id)]


def test_transient_failures_are_retried_with_backoff(workdir: Path) -> None:
    time = FakeTime()
    step = Script(LakeBusyError("lake busy"), OSError("disk hiccup"), time=time, took=0.5)
    runner = make_runner(workdir, workflow("load", retry=TRANSIENT_2_4), {"load": step}, time)

    execution = runner.start({"date": "2023-01-15"})

    assert execution.status == "SUCCEEDED" and execution.error is None
    assert time.sleeps == [2.0, 4.0]
    assert [ctx.attempt for ctx in step.contexts] == [1, 2, 3]
    attempts = [(r.attempt, r.status, r.error, r.delay_before_s, r.duration_s) for r in execution.steps]
    assert attempts == [(1, "FAILED", "LakeBusyError", 0.0, 0.5), (2, "FAILED", "OSError", 2.0, 0.5),
                        (3, "SUCCEEDED", None, 4.0, 0.5)]
    last = execution.steps[-1]
    assert (last.rows_in, last.rows_out, last.rows_quarantined) == (10, 9, 1)
    assert execution.input == {"date": "2023-01-15"}
    assert execution.started_at == "2024-01-15T10:30:00.000Z" and execution.duration_s == pytest.approx(7.5)
    assert execution.id.startswith("exec-20240115T103000Z-") and len(execution.id) == len("exec-20240115T103000Z-") + 6
    assert _events(runner, execution.id) == [
        "ExecutionStarted", "TaskStateEntered",
        "TaskStarted", "TaskFailed", "RetryScheduled",
        "TaskStarted", "TaskFailed", "RetryScheduled",
        "TaskStarted", "TaskSucceeded", "ExecutionSucceeded",
    ]
    retry = [e.details for e in runner.state.events(execution.id) if e.type == "RetryScheduled"]
    assert [(d["delay_s"], d["retry"], d["attempt"]) for d in retry] == [(2.0, 1, 2), (4.0, 2, 3)]


def test_full_jitter_delays_are_within_bounds_and_seeded(workdir: Path) -> None:
    time = FakeTime()
    retry = (Retrier(("Transient",), interval_seconds=2, max_attempts=3, jitter_strategy="FULL"),)
    runner = make_runner(workdir, workflow("load", retry=retry), {"load": Script(OSError(), OSError())}, time, seed=3)

    assert runner.start().succeeded
    rng = random.Random(3)
    assert time.sleeps == [rng.uniform(0, 2), rng.uniform(0, 4)]
    assert 0 <= time.sleeps[0] <= 2 and 0 <= time.sleeps[1] <= 4


def test_max_delay_caps_the_sleeps(workdir: Path) -> None:
    time = FakeTime()
    retry = (Retrier(("Transient",), interval_seconds=3, max_attempts=4, backoff_rate=3.0, max_delay_seconds=10),)
    runner = make_runner(workdir, workflow("s", retry=retry), {"s": Script(*[OSError()] * 4)}, time)
    assert runner.start().succeeded
    assert time.sleeps == [3.0, 9.0, 10.0, 10.0]


def test_each_retrier_counts_its_own_attempts(workdir: Path) -> None:
    time = FakeTime()
    retry = (
        Retrier(("LakeBusyError",), interval_seconds=1, max_attempts=2, backoff_rate=10.0),
        Retrier(("Transient",), interval_seconds=5, max_attempts=1),
    )
    busy = LakeBusyError("busy")
    step = Script(busy, OSError("io"), busy, busy)  # the 4th error finds the first retrier exhausted
    channel = ListChannel()
    runner = make_runner(workdir, workflow("s", retry=retry), {"s": step}, time, channel=channel)

    execution = runner.start()

    assert time.sleeps == [1.0, 5.0, 10.0]
    assert step.calls == 4
    assert execution.status == "FAILED" and execution.error == "LakeBusyError"


def test_permanent_error_is_not_retried_even_when_a_retrier_matches(workdir: Path) -> None:
    time = FakeTime()
    retry = (Retrier(("States.ALL",), max_attempts=5),)
    step = Script(QualityGateError("quarantine rate 40% above 30%"))
    channel = ListChannel()
    runner = make_runner(workdir, workflow("validate", "transform", retry=retry),
                         {"validate": step, "transform": Script()}, time, channel=channel)

    execution = runner.start()

    assert step.calls == 1 and time.sleeps == []
    assert execution.status == "FAILED"
    assert execution.error == "QualityGateError" and execution.cause == "quarantine rate 40% above 30%"
    assert [r.step for r in execution.steps] == ["validate"]
    assert isinstance(execution.exception, QualityGateError)
    with pytest.raises(QualityGateError):
        execution.raise_for_status()


def test_exhausted_retries_go_to_catch_and_notify(workdir: Path) -> None:
    time = FakeTime()
    step = Script(*[LakeBusyError("the lake is in use by pid 42")] * 4)
    channel = ListChannel()
    runner = make_runner(workdir, workflow("validate", "transform", retry=TRANSIENT_2_4),
                         {"validate": step, "transform": Script()}, time, channel=channel)

    execution = runner.start({"date": "2023-01-15"})

    assert time.sleeps == [2.0, 4.0, 8.0] and step.calls == 4
    assert execution.status == "FAILED" and not execution.succeeded
    assert execution.error == "LakeBusyError" and execution.cause == "the lake is in use by pid 42"
    assert [r.status for r in execution.steps] == ["FAILED"] * 4
    (alert,) = channel.alerts
    assert (alert.kind, alert.job, alert.rule, alert.partition) == ("step_failed", "test-wf", "validate",
                                                                     "date=2023-01-15")
    assert alert.details["attempts"] == 4 and alert.details["execution_id"] == execution.id
    assert alert.message == "LakeBusyError: the lake is in use by pid 42"
    events = _events(runner, execution.id)
    assert events[-4:] == ["TaskFailed", "CatchTriggered", "NotificationSent", "ExecutionFailed"]
    assert "TaskStateEntered" not in events[events.index("CatchTriggered"):]  # transform never started


def test_error_without_a_matching_catcher_fails_without_notification(workdir: Path) -> None:
    from retail_etl.workflow import StepDef, WorkflowDef

    time = FakeTime()
    channel = ListChannel()
    definition = WorkflowDef("w", (StepDef("s"),))
    runner = make_runner(workdir, definition, {"s": Script(ValueError("bad input"))}, time, channel=channel)
    execution = runner.start()
    assert execution.status == "FAILED" and execution.error == "ValueError"
    assert channel.alerts == [] and "CatchTriggered" not in _events(runner, execution.id)


def test_step_returning_something_else_is_states_runtime_and_never_retried(workdir: Path) -> None:
    calls = []
    retry = (Retrier(("States.ALL",), interval_seconds=1, max_attempts=3),)
    runner = make_runner(workdir, workflow("s", retry=retry), {"s": lambda ctx: calls.append(1) or 42}, FakeTime())
    execution = runner.start()
    assert execution.error == "States.Runtime" and "expected StepResult" in (execution.cause or "")
    assert calls == [1]  # States.ALL matched, yet no retry


def test_catcher_with_result_path_null_still_catches_and_notifies(workdir: Path) -> None:
    from retail_etl.workflow import Catcher, StepDef, WorkflowDef

    channel = ListChannel()
    definition = WorkflowDef("w", (StepDef("s", catch=(Catcher(("States.ALL",), result_path=None),)),))
    runner = make_runner(workdir, definition, {"s": Script(ValueError("bad input"))}, FakeTime(), channel=channel)
    execution = runner.start()
    assert execution.status == "FAILED" and execution.error == "ValueError"
    (alert,) = channel.alerts
    assert alert.message == "ValueError: bad input"
    assert _events(runner, execution.id)[-3:] == ["CatchTriggered", "NotificationSent", "ExecutionFailed"]


def test_timeout_raises_states_timeout(workdir: Path) -> None:
    def slow(ctx):
        time.sleep(5)  # interrupted by the alarm after 0.05 s

    clock = FakeTime()
    retry = (Retrier(("States.Timeout",), interval_seconds=1, max_attempts=1),)
    runner = make_runner(workdir, workflow("slow", retry=retry, timeout=0.05), {"slow": slow}, clock)
    started = time.monotonic()

    execution = runner.start()

    assert time.monotonic() - started < 2
    assert execution.status == "FAILED"
    assert execution.error == "States.Timeout" and "did not finish within 0.05 s" in (execution.cause or "")
    assert [r.error for r in execution.steps] == ["States.Timeout", "States.Timeout"]
    assert clock.sleeps == [1.0]
    assert "TaskTimedOut" in _events(runner, execution.id)


def test_timeout_does_not_fire_for_a_fast_step(workdir: Path) -> None:
    runner = make_runner(workdir, workflow("fast", timeout=0.05), {"fast": Script()}, FakeTime())
    assert runner.start().succeeded
    time.sleep(0.1)  # the alarm was cancelled: nothing fires later


def test_resume_runs_only_the_failed_step_and_the_rest(workdir: Path) -> None:
    clock = FakeTime()
    validate = Script(result=StepResult(100, 95, 5, {"dates": ["2023-01-15"]}, {"sources": {"pos": [100, 95]}}))
    transform = Script(QualityGateError("unknown products"), result=StepResult(95, 95, 0))
    analytics = Script(result=StepResult(95, 4, 0))
    runner = make_runner(workdir, workflow("validate", "transform", "analytics", retry=TRANSIENT_2_4),
                         {"validate": validate, "transform": transform, "analytics": analytics}, clock)

    failed = runner.start({"date": "2023-01-15"})
    assert failed.status == "FAILED" and (validate.calls, transform.calls, analytics.calls) == (1, 1, 0)

    resumed = runner.resume(failed.id[:-2])  # a unique prefix is enough

    assert resumed.status == "SUCCEEDED" and resumed.resumed_from == failed.id and resumed.id != failed.id
    assert (validate.calls, transform.calls, analytics.calls) == (1, 2, 1)
    assert resumed.input == {"date": "2023-01-15"}
    assert [(r.step, r.status) for r in resumed.steps] == [
        ("validate", "SKIPPED"), ("transform", "SUCCEEDED"), ("analytics", "SUCCEEDED")
    ]
    assert resumed.steps[0].rows_in == 100
    # a resumed step still sees what the skipped steps reported
    assert transform.contexts[-1].results["validate"].details == {"dates": ["2023-01-15"]}
    # the typed result is recorded with the attempt, and copied to the step a resume skips
    assert runner.state.execution(failed.id).steps[0].result == {"sources": {"pos": [100, 95]}}
    assert resumed.steps[0].result == {"sources": {"pos": [100, 95]}} and resumed.steps[2].result is None
    assert transform.contexts[-1].results["validate"].result == {"sources": {"pos": [100, 95]}}
    assert runner.state.execution(failed.id).status == "FAILED"


def test_a_state_database_without_step_results_gains_the_column(workdir: Path) -> None:
    path = workdir / "old.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE step_runs (execution_id TEXT NOT NULL, step TEXT NOT NULL, attempt INTEGER NOT NULL,"
                " status TEXT NOT NULL, started_at TEXT NOT NULL, ended_at TEXT, duration_s REAL,"
                " delay_before_s REAL NOT NULL DEFAULT 0, rows_in INTEGER, rows_out INTEGER, rows_quarantined INTEGER,"
                " error TEXT, cause TEXT, details TEXT, PRIMARY KEY (execution_id, step, attempt))")
    con.commit()
    con.close()
    runner = make_runner(workdir, workflow("s"), {"s": Script(result=StepResult(1, 1, 0, result={"n": 1}))},
                         FakeTime())
    runner.state = WorkflowState(path)
    execution = runner.start()
    assert execution.succeeded and execution.steps[0].result == {"n": 1}


def test_only_failed_or_aborted_executions_can_be_resumed(workdir: Path) -> None:
    runner = make_runner(workdir, workflow("s"), {"s": Script()}, FakeTime())
    ok = runner.start()
    with pytest.raises(Exception, match="is SUCCEEDED: only FAILED or ABORTED"):
        runner.resume(ok.id)


def test_keyboard_interrupt_aborts_the_execution(workdir: Path) -> None:
    runner = make_runner(workdir, workflow("s"), {"s": Script(KeyboardInterrupt())}, FakeTime())
    with pytest.raises(KeyboardInterrupt):
        runner.start()
    (execution,) = runner.state.executions()
    execution = runner.state.execution(execution.id)
    assert execution.status == "ABORTED" and execution.error == "KeyboardInterrupt"
    assert execution.steps[0].status == "ABORTED"
    resumed = runner.resume(execution.id)
    assert resumed.succeeded


def test_steps_and_functions_must_match(workdir: Path) -> None:
    with pytest.raises(ValueError, match=r"no function for \['b'\], no step for \['c'\]"):
        make_runner(workdir, workflow("a", "b"), {"a": Script(), "c": Script()}, FakeTime())


def test_stale_running_execution_is_recovered(workdir: Path) -> None:
    import subprocess
    import sys

    state = WorkflowState(workdir / "state.db")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    state.create_execution("exec-dead", "w", {}, START)
    state.start_step("exec-dead", "s", 1, START)
    state.create_execution("exec-alive", "w", {}, START)
    with state._db() as con:
        con.execute("UPDATE executions SET pid = ? WHERE id = 'exec-dead'", (dead_pid,))

    assert state.recover_stale(START) == ["exec-dead"]

    dead_exec = state.execution("exec-dead")
    assert dead_exec.status == "ABORTED" and f"process {dead_pid}" in (dead_exec.cause or "")
    assert dead_exec.steps[0].status == "ABORTED"
    assert state.execution("exec-alive").status == "RUNNING"  # this process is alive
    assert [e.type for e in state.events("exec-dead")] == ["ExecutionAborted"]
    # a live process whose heartbeat is too old counts as stale when asked
    later = START.replace(hour=12)
    assert state.recover_stale(later, heartbeat_timeout=3600) == ["exec-alive"]


def test_logs_record_every_event_and_step_messages(workdir: Path) -> None:
    def step(ctx):
        ctx.log("RowsRead", rows=3, file="sales.csv")
        return StepResult(3, 3, 0)

    runner = make_runner(workdir, workflow("s"), {"s": step}, FakeTime())
    execution = runner.start({"date": "2023-01-15"})
    lines = [json.loads(line) for line in (workdir / "_logs" / f"{execution.id}.jsonl").read_text().splitlines()]
    assert [r["event"] for r in lines] == ["ExecutionStarted", "TaskStateEntered", "TaskStarted", "RowsRead",
                                           "TaskSucceeded", "ExecutionSucceeded"]
    rows_read = lines[3]
    assert rows_read == {"time": "2024-01-15T10:30:00.000Z", "level": "info", "execution_id": execution.id,
                         "step": "s", "event": "RowsRead", "rows": 3, "file": "sales.csv"}


def test_step_can_notify_through_the_runner(workdir: Path) -> None:
    from retail_etl.notify import quarantine_rate_alert

    def step(ctx):
        ctx.notify(quarantine_rate_alert("sales", 0.08, 0.05, partition="2023-01-15", run_id=ctx.execution_id))
        return StepResult(100, 92, 8)

    channel = ListChannel()
    runner = make_runner(workdir, workflow("validate"), {"validate": step}, FakeTime(), channel=channel)
    execution = runner.start()
    (alert,) = channel.alerts
    assert alert.kind == "quarantine_rate_warn" and alert.severity == "warning" and "8.00%" in alert.title
    sent = [e for e in runner.state.events(execution.id) if e.type == "NotificationSent"]
    assert sent[0].step == "validate" and sent[0].details == {"kind": "quarantine_rate_warn", "channels": ["list"]}


def test_success_summary_when_asked(workdir: Path) -> None:
    channel = ListChannel()
    runner = make_runner(workdir, workflow("a", "b"), {"a": Script(), "b": Script()}, FakeTime(), channel=channel)
    runner.start()
    assert channel.alerts == []
    runner.notifier.on_success = True
    execution = runner.start()
    (summary,) = channel.alerts
    assert summary.kind == "success_summary" and summary.partition == execution.id
    assert summary.message == "a: 10 in, 9 out, 1 quarantined; b: 10 in, 9 out, 1 quarantined"


def test_a_broken_notifier_never_changes_the_outcome(workdir: Path) -> None:
    class Broken:
        on_success = True

        def send(self, alert):
            raise RuntimeError("dedup store unreachable")

    runner = make_runner(workdir, workflow("s"), {"s": Script()}, FakeTime())
    runner.notifier = Broken()
    execution = runner.start()
    assert execution.succeeded
    assert "NotificationFailed" in _events(runner, execution.id)


def test_partition_of_input() -> None:
    assert partition_of({"date": "2023-01-15", "source": "sales"}) == "date=2023-01-15,source=sales"
    assert partition_of({}) == ""
