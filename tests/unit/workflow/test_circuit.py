"""The circuit breaker: opens after N failed executions, refuses, half-opens after the cool-down, resets."""

from __future__ import annotations

from pathlib import Path

import pytest

from retail_etl.errors import PermanentError, QualityGateError
from retail_etl.workflow import CircuitOpenError
from tests.unit.workflow.helpers import FakeTime, ListChannel, Script, make_runner, workflow


class Switch:
    """A step that fails permanently until ``ok`` is set."""

    def __init__(self) -> None:
        self.ok = False

    def __call__(self, ctx):
        if not self.ok:
            raise QualityGateError("RowCount > 0 failed")


def _runner(workdir: Path, time: FakeTime, step: Switch, channel: ListChannel):
    return make_runner(workdir, workflow("validate"), {"validate": step}, time, channel=channel, circuit=True)


def test_opens_after_three_failures_and_refuses(workdir: Path) -> None:
    time, step, channel = FakeTime(), Switch(), ListChannel()
    runner = _runner(workdir, time, step, channel)
    for _ in range(2):
        assert runner.start({"date": "2023-01-15"}).status == "FAILED"
        assert runner.circuit.status().state == "CLOSED"
    third = runner.start({"date": "2023-01-15"})
    status = runner.circuit.status()
    assert status.state == "OPEN" and status.failures == 3 and status.last_execution == third.id

    with pytest.raises(CircuitOpenError) as info:
        runner.start({"date": "2023-01-15"})
    assert isinstance(info.value, PermanentError)
    message = str(info.value)
    assert "opened at 2024-01-15T10:30:00.000Z after 3 consecutive failed execution(s)" in message
    assert third.id in message and "QualityGateError: RowCount > 0 failed" in message
    assert "half-opens at 2024-01-15T11:30:00.000Z" in message
    assert "retail-etl circuit reset" in message
    assert len(runner.state.executions(limit=10)) == 3  # the refused start recorded nothing

    kinds = [a.kind for a in channel.alerts]
    assert kinds == ["step_failed", "circuit_open"]  # step_failed repeats for the same date are de-duplicated
    assert channel.alerts[1].severity == "critical"
    assert "CircuitOpened" in [e.type for e in runner.state.events(third.id)]


def test_half_open_after_cooldown_allows_one_trial(workdir: Path) -> None:
    time, step, channel = FakeTime(), Switch(), ListChannel()
    runner = _runner(workdir, time, step, channel)
    for _ in range(3):
        runner.start()
    time.advance(3599)
    assert runner.circuit.status().state == "OPEN"
    time.advance(1)
    assert runner.circuit.status().state == "HALF_OPEN"

    trial = runner.start()  # fails: the circuit opens again at once, with a new cool-down
    assert trial.status == "FAILED"
    status = runner.circuit.status()
    assert status.state == "OPEN" and status.failures == 4 and status.opened_at == time.now

    time.advance(3600)
    step.ok = True
    assert runner.start().succeeded
    status = runner.circuit.status()
    assert status.state == "CLOSED" and status.failures == 0
    assert runner.start().succeeded


def test_a_running_trial_blocks_a_second_one(workdir: Path) -> None:
    time, step, channel = FakeTime(), Switch(), ListChannel()
    runner = _runner(workdir, time, step, channel)
    for _ in range(3):
        runner.start()
    time.advance(3600)
    seen = []

    def nested(ctx):
        with pytest.raises(CircuitOpenError, match=r"trial execution .* is still running"):
            runner.start()
        seen.append(ctx.execution_id)

    runner.steps["validate"] = nested
    assert runner.start().succeeded and len(seen) == 1


def test_reset_closes_and_rearms_the_alert(workdir: Path) -> None:
    time, step, channel = FakeTime(), Switch(), ListChannel()
    runner = _runner(workdir, time, step, channel)
    for _ in range(3):
        runner.start()
    before = runner.circuit.reset()
    assert before.state == "OPEN" and runner.circuit.status().state == "CLOSED"
    for _ in range(3):
        runner.start()  # fails again: opens again, and alerts again although within 24 h
    assert [a.kind for a in channel.alerts].count("circuit_open") == 2


def test_successes_reset_the_count_and_aborts_do_not_count(workdir: Path) -> None:
    time, channel = FakeTime(), ListChannel()
    step = Switch()
    runner = _runner(workdir, time, step, channel)
    runner.start()
    runner.start()
    step.ok = True
    runner.start()
    step.ok = False
    runner.start()
    runner.start()
    assert runner.circuit.status().failures == 2
    runner.steps["validate"] = Script(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        runner.start()
    assert runner.circuit.status().state == "CLOSED"


def test_configuration_failures_never_open_the_circuit(workdir: Path) -> None:
    from retail_etl.errors import ConfigError

    time, channel = FakeTime(), ListChannel()
    bad_config = ConfigError("engine.memory_limit: 'lots' is not a size")
    step = Script(bad_config, bad_config, bad_config)
    runner = make_runner(workdir, workflow("validate"), {"validate": step}, time, channel=channel, circuit=True)
    for _ in range(3):
        assert runner.start().status == "FAILED"
    status = runner.circuit.status()
    assert (status.state, status.failures) == ("CLOSED", 0)

    fixed = runner.start()  # the configuration fixed: the run is not refused
    assert fixed.status == "SUCCEEDED" and step.calls == 4
    assert runner.circuit.status().state == "CLOSED"
    assert "circuit_open" not in [a.kind for a in channel.alerts]


def test_a_configuration_failure_between_others_neither_counts_nor_resets(workdir: Path) -> None:
    from retail_etl.errors import ConfigError

    time = FakeTime()
    step = Script(QualityGateError("gate"), ConfigError("bad"), QualityGateError("gate"), QualityGateError("gate"))
    runner = make_runner(workdir, workflow("validate"), {"validate": step}, time, circuit=True)
    failures = []
    for _ in range(4):
        runner.start()
        failures.append(runner.circuit.status().failures)
    assert failures == [1, 1, 2, 3] and runner.circuit.status().state == "OPEN"
