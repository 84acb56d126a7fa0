"""The runner across processes: a killed run is detected, marked ABORTED and resumed; heartbeats."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from retail_etl.workflow import Runner, StepResult, WorkflowState, default_workflow

CHILD = """
import sys, time
from pathlib import Path
from retail_etl.workflow import Runner, StepResult, WorkflowState, default_workflow

def transform(ctx):
    print(ctx.execution_id, flush=True)
    time.sleep(60)

steps = {"validate": lambda ctx: StepResult(100, 98, 2), "transform": transform, "analytics": lambda ctx: None}
runner = Runner(default_workflow(tuple(steps)), steps, WorkflowState(Path(sys.argv[1])), heartbeat_seconds=None)
runner.start({"date": "2023-01-15"})
"""


def test_killed_run_is_aborted_then_resumed(tmp_path: Path) -> None:
    db = tmp_path / "_state" / "state.db"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        execution_id = child.stdout.readline().strip()  # transform is running
        assert execution_id.startswith("exec-")
        state = WorkflowState(db)
        assert state.execution(execution_id).status == "RUNNING"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()

    calls = []
    steps = {"validate": lambda ctx: calls.append("validate"),
             "transform": lambda ctx: calls.append("transform") or StepResult(98, 97, 1),
             "analytics": lambda ctx: calls.append("analytics")}
    runner = Runner(default_workflow(tuple(steps)), steps, state, heartbeat_seconds=None)
    resumed = runner.resume(execution_id)  # recovers the dead run first

    killed = state.execution(execution_id)
    assert killed.status == "ABORTED" and killed.error == "ProcessGone"
    assert killed.cause == f"process {child.pid} on {killed.host} is gone"
    assert [(r.step, r.status) for r in killed.steps] == [("validate", "SUCCEEDED"), ("transform", "ABORTED")]
    assert resumed.status == "SUCCEEDED" and resumed.resumed_from == execution_id
    assert calls == ["transform", "analytics"]
    assert [(r.step, r.status, r.rows_in) for r in resumed.steps] == [
        ("validate", "SKIPPED", 100), ("transform", "SUCCEEDED", 98), ("analytics", "SUCCEEDED", 0)
    ]


def test_heartbeat_is_refreshed_while_a_step_runs(tmp_path: Path) -> None:
    state = WorkflowState(tmp_path / "state.db")
    beats = []

    def slow(ctx):
        first = _heartbeat(state, ctx.execution_id)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _heartbeat(state, ctx.execution_id) == first:
            time.sleep(0.02)
        beats.append((first, _heartbeat(state, ctx.execution_id)))

    Runner(default_workflow(("slow",)), {"slow": slow}, state, heartbeat_seconds=0.05).start()
    ((before, after),) = beats
    assert after > before


def _heartbeat(state: WorkflowState, execution_id: str) -> str | None:
    return state.execution(execution_id).heartbeat_at
