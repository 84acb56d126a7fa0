"""`retail-etl runs`, `logs` and `circuit` on a state database filled by a real runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from retail_etl.cli.circuit import circuit_app
from retail_etl.cli.runs import app as runs_app
from retail_etl.cli.runs import logs_command
from retail_etl.config.loader import load_config
from retail_etl.errors import LakeBusyError, QualityGateError
from retail_etl.workflow import runner_from_config
from retail_etl.workflow.state import ExecutionNotFoundError
from retail_etl.workflow.state import utcnow
from tests.unit.workflow.helpers import FakeTime, Script

cli = CliRunner()
ENV = {"COLUMNS": "250"}


@pytest.fixture
def project(scaffold_config: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RETAIL_ETL__LAKE__ROOT", str(workdir / "lake"))
    scaffold_config.write_text(scaffold_config.read_text() + """
workflow:
  retry:
    - error_equals: [Transient]
      interval_seconds: 2
      max_attempts: 3
  circuit: {failure_threshold: 2}
""")
    return scaffold_config


def _now() -> FakeTime:
    """Injected time starting now: the commands compare the circuit's times with the real clock."""
    time = FakeTime()
    time.now = utcnow()
    return time


def _fill(project: Path) -> tuple[str, str]:
    """One successful execution, then one where transform retries once and fails on a quality gate."""
    time = _now()
    config = load_config(project)
    ok = runner_from_config(config, {"validate": Script(), "transform": Script(), "analytics": Script()},
                            clock=time.clock, sleep=time.sleep, wall=time.wall, heartbeat_seconds=None)
    first = ok.start({"date": "2023-01-15"})
    transform = Script(LakeBusyError("the lake is in use by pid 7"), QualityGateError("RowCount > 0 failed"),
                       time=time, took=1.5)
    failing = runner_from_config(config, {"validate": Script(), "transform": transform, "analytics": Script()},
                                 clock=time.clock, sleep=time.sleep, wall=time.wall, heartbeat_seconds=None)
    second = failing.start({"date": "2023-01-16"})
    assert (first.status, second.status) == ("SUCCEEDED", "FAILED")
    return first.id, second.id


def _invoke(app: typer.Typer, *args: str):
    result = cli.invoke(app, list(args), env=ENV)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_runs_list(project: Path) -> None:
    ok, failed = _fill(project)
    out = _invoke(runs_app, "list", "--config", str(project))
    assert out.index(failed) < out.index(ok)  # newest first
    assert "SUCCEEDED" in out and "FAILED" in out and "QualityGateError" in out
    only_failed = _invoke(runs_app, "list", "--status", "failed", "-c", str(project))
    assert failed in only_failed and ok not in only_failed
    assert ok not in _invoke(runs_app, "list", "--limit", "1", "-c", str(project))
    bad = cli.invoke(runs_app, ["list", "--status", "DONE", "-c", str(project)])
    assert bad.exit_code == 2 and "choose one of RUNNING" in bad.output


def test_runs_list_without_any_execution(project: Path) -> None:
    assert "no executions yet" in _invoke(runs_app, "list", "-c", str(project))
    assert not (project.parent / "lake").exists()


def test_runs_show_describes_every_attempt(project: Path) -> None:
    _, failed = _fill(project)
    out = _invoke(runs_app, "show", failed, "--config", str(project))
    lines = out.splitlines()
    assert any(line.split() == ["status", "FAILED"] for line in lines)
    assert '{"date": "2023-01-16"}' in out
    assert any(line.startswith("error") and "QualityGateError" in line for line in lines)
    assert any(line.startswith("cause") and "RowCount > 0 failed" in line for line in lines)
    rows = [line.split() for line in lines if line.startswith(("validate ", "transform "))]
    assert rows == [
        ["validate", "1", "SUCCEEDED", "0.00s", "-", "10", "9", "1"],
        ["transform", "1", "FAILED", "1.50s", "-", "-", "-", "-"],
        ["transform", "2", "FAILED", "1.50s", "2.00s", "-", "-", "-"],  # duration, then the delay before it
    ]
    assert "  transform attempt 1: LakeBusyError: the lake is in use by pid 7" in lines
    assert "  transform attempt 2: QualityGateError: RowCount > 0 failed" in lines

def test_runs_show_events_and_prefix(project: Path) -> None:
    _, failed = _fill(project)
    out = _invoke(runs_app, "show", failed[:-3], "--events", "-c", str(project))
    for event in ("ExecutionStarted", "RetryScheduled", "CatchTriggered", "ExecutionFailed"):
        assert event in out


def test_runs_show_unknown_id(project: Path) -> None:
    _fill(project)
    result = cli.invoke(runs_app, ["show", "exec-nope", "-c", str(project)])
    assert isinstance(result.exception, ExecutionNotFoundError)
    assert "no execution matches 'exec-nope'" in str(result.exception)


def test_logs_text_and_json(project: Path) -> None:
    app = typer.Typer()
    app.command("logs")(logs_command)
    app.command("unused")(lambda: None)  # a second command keeps `logs` a subcommand
    _, failed = _fill(project)
    text = _invoke(app, "logs", failed, "-c", str(project))
    assert "ERROR   transform    CatchTriggered error=QualityGateError" in text
    lines = [json.loads(line) for line in _invoke(app, "logs", failed, "--log-format", "json", "-c",
                                                  str(project)).splitlines()]
    assert lines[0]["event"] == "ExecutionStarted" and lines[-1]["event"] == "ExecutionFailed"
    assert {"time", "level", "execution_id", "step", "event"} <= set(lines[0])
    assert (project.parent / "lake").exists() is False  # the lake root came from the environment


def test_circuit_status_and_reset(project: Path) -> None:
    _fill(project)
    out = _invoke(circuit_app, "status", "-c", str(project))
    assert "CLOSED" in out and "1 consecutive (opens at 2)" in out
    time = _now()
    runner = runner_from_config(
        load_config(project), {"validate": Script(ValueError("x")), "transform": Script(), "analytics": Script()},
        clock=time.clock, sleep=time.sleep, wall=time.wall, heartbeat_seconds=None,
    )
    runner.start()
    out = _invoke(circuit_app, "status", "-c", str(project))
    assert "OPEN" in out.split() and "half-opens at" in out and "ValueError: x" in out
    assert "retail-etl circuit reset" in out
    out = _invoke(circuit_app, "reset", "-c", str(project))
    assert "closed (was OPEN, 2 consecutive failure(s))" in out
    assert "CLOSED" in _invoke(circuit_app, "status", "-c", str(project))
    assert runner.start().succeeded  # started: the circuit is closed


@pytest.mark.parametrize("app", [runs_app, circuit_app])
def test_help(app: typer.Typer) -> None:
    out = _invoke(app, "--help")
    assert "Usage" in out


def test_runs_list_as_json_and_csv(project: Path) -> None:
    import csv
    import io

    ok, failed = _fill(project)
    rows = json.loads(_invoke(runs_app, "list", "--format", "json", "-c", str(project)))
    assert [r["id"] for r in rows] == [failed, ok]
    assert list(rows[0]) == ["id", "workflow", "status", "started_at", "ended_at", "duration_s", "error", "cause",
                             "resumed_from"]
    assert rows[0]["status"] == "FAILED" and rows[0]["error"] == "QualityGateError"
    assert rows[0]["cause"] == "RowCount > 0 failed" and rows[1]["error"] is None and rows[1]["resumed_from"] is None
    table = list(csv.reader(io.StringIO(_invoke(runs_app, "list", "--format", "csv", "-c", str(project)))))
    assert table[0][:3] == ["id", "workflow", "status"] and [r[0] for r in table[1:]] == [failed, ok]
    assert table[2][6] == ""  # NULL is an empty field
    bad = cli.invoke(runs_app, ["list", "--format", "xml", "-c", str(project)])
    assert bad.exit_code == 2 and "choose table, csv, json" in bad.output


def test_runs_list_json_without_any_execution(project: Path) -> None:
    assert json.loads(_invoke(runs_app, "list", "--format", "json", "-c", str(project))) == []
    assert _invoke(runs_app, "list", "--format", "csv", "-c", str(project)).splitlines()[0].startswith("id,")


def test_runs_show_as_json_and_csv(project: Path) -> None:
    import csv
    import io

    _, failed = _fill(project)
    doc = json.loads(_invoke(runs_app, "show", failed, "--events", "--format", "json", "-c", str(project)))
    assert doc["id"] == failed and doc["status"] == "FAILED" and doc["input"] == {"date": "2023-01-16"}
    assert [(s["step"], s["attempt"], s["status"]) for s in doc["steps"]] == [
        ("validate", 1, "SUCCEEDED"), ("transform", 1, "FAILED"), ("transform", 2, "FAILED")]
    assert doc["steps"][0]["rows_in"] == 10 and doc["steps"][2]["delay_before_s"] == 2.0
    assert doc["events"][0]["type"] == "ExecutionStarted" and doc["events"][-1]["type"] == "ExecutionFailed"
    steps = list(csv.DictReader(io.StringIO(_invoke(runs_app, "show", failed, "--format", "csv", "-c",
                                                    str(project)))))
    assert [(s["step"], s["attempt"], s["rows_out"]) for s in steps] == [
        ("validate", "1", "9"), ("transform", "1", ""), ("transform", "2", "")]
    assert steps[1]["cause"] == "the lake is in use by pid 7"
    events = list(csv.DictReader(io.StringIO(_invoke(runs_app, "show", failed, "--events", "--format", "csv",
                                                     "-c", str(project)))))
    assert [e["seq"] for e in events] == [str(i) for i in range(1, len(events) + 1)] and len(events) == len(
        doc["events"])


def test_circuit_status_as_json_and_csv(project: Path) -> None:
    import csv
    import io

    _fill(project)
    doc = json.loads(_invoke(circuit_app, "status", "--format", "json", "-c", str(project)))
    assert doc["state"] == "CLOSED" and doc["failures"] == 1 and doc["failure_threshold"] == 2
    assert doc["enabled"] is True and doc["opened_at"] is None and "QualityGateError" in doc["last_error"]
    rows = list(csv.DictReader(io.StringIO(_invoke(circuit_app, "status", "--format", "csv", "-c", str(project)))))
    assert len(rows) == 1 and rows[0]["state"] == "CLOSED" and rows[0]["opened_at"] == ""


def test_listings_show_data_verbatim(project: Path) -> None:
    """An error text holding markup, an emoji code and an escape sequence is shown as written."""
    time = _now()
    hostile = "[bold red]boom[/] :thumbs_up: \x1b]0;pwned\x07 done"
    runner = runner_from_config(load_config(project), {"validate": Script(ValueError(hostile)),
                                                       "transform": Script(), "analytics": Script()},
                                clock=time.clock, sleep=time.sleep, wall=time.wall, heartbeat_seconds=None)
    execution = runner.start()
    shown = "[bold red]boom[/] :thumbs_up: \\x1b]0;pwned\\x07 done"
    for out in (_invoke(runs_app, "show", execution.id, "-c", str(project)),
                _invoke(circuit_app, "status", "-c", str(project))):
        assert shown in out and "\x1b" not in out and "👍" not in out
    listing = _invoke(runs_app, "list", "-c", str(project))
    assert execution.id in listing and "\x1b" not in listing
    doc = json.loads(_invoke(runs_app, "show", execution.id, "--format", "json", "-c", str(project)))
    assert doc["cause"] == hostile  # JSON keeps the data itself


def test_long_cells_are_never_cut_when_piped(project: Path) -> None:
    time = _now()
    long = "x" * 300 + "-END"
    runner = runner_from_config(load_config(project), {"validate": Script(ValueError(long)),
                                                       "transform": Script(), "analytics": Script()},
                                clock=time.clock, sleep=time.sleep, wall=time.wall, heartbeat_seconds=None)
    execution = runner.start()
    result = cli.invoke(runs_app, ["show", execution.id, "-c", str(project)], env={"COLUMNS": "40"})
    assert result.exit_code == 0 and long in result.output and "…" not in result.output


def test_listings_of_a_lake_that_never_ran_create_nothing(project: Path, workdir: Path) -> None:
    assert "no executions yet" in _invoke(runs_app, "list", "-c", str(project))
    out = _invoke(circuit_app, "status", "-c", str(project))
    assert "CLOSED" in out.split() and "0 consecutive (opens at 2)" in out
    assert json.loads(_invoke(circuit_app, "status", "--format", "json", "-c", str(project)))["failures"] == 0
    assert not (workdir / "lake").exists()
