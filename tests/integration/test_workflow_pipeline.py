"""The real pipeline under the workflow runner: retried transient faults, permanent failures, the circuit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retail_etl import pipeline
from retail_etl.pipeline import analytics as analytics_module
from retail_etl.pipeline import transform as transform_module
from retail_etl.cli.main import app
from retail_etl.config.loader import load_config
from retail_etl.errors import LakeBusyError, QualityGateError
from retail_etl.scaffold import create_project
from retail_etl.workflow import CircuitOpenError, WorkflowState

FAST_RETRY = """
workflow:
  retry:
    - {error_equals: [Transient], interval_seconds: 0.05, max_attempts: 3, backoff_rate: 2.0, jitter_strategy: NONE}
  circuit: {enabled: true, failure_threshold: 2, cooldown_seconds: 3600}
notifications:
  channels: [console]
"""


def _project(tmp_path: Path, rows: int = 300) -> Path:
    project = tmp_path / "p"
    create_project(project, rows=rows)
    text = (project / "retail-etl.yaml").read_text()
    text = text[: text.index("\n# The workflow:")] + "\n" + FAST_RETRY
    (project / "retail-etl.yaml").write_text(text)
    return project


def _state(project: Path) -> WorkflowState:
    return WorkflowState(project / "lake" / "_state" / "state.db")


def test_transient_fault_is_retried_with_backoff_and_shown(tmp_path: Path, monkeypatch) -> None:
    project = _project(tmp_path)
    real, calls = transform_module.transform_step, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) <= 2:
            raise LakeBusyError("catalog.db is locked by another writer")
        return real(*args, **kwargs)

    monkeypatch.setattr(transform_module, "transform_step", flaky)
    result = pipeline.run(load_config(project / "retail-etl.yaml", env={}))
    assert result.transform is not None and result.marts["daily_sales"] > 0
    execution = _state(project).execution(result.run_id)
    assert execution.status == "SUCCEEDED"
    attempts = [(s.step, s.attempt, s.status, s.delay_before_s) for s in execution.steps if s.step == "transform"]
    assert attempts == [("transform", 1, "FAILED", 0.0), ("transform", 2, "FAILED", 0.05),
                        ("transform", 3, "SUCCEEDED", 0.1)]
    shown = CliRunner().invoke(app, ["runs", "show", result.run_id, "--config", str(project / "retail-etl.yaml")])
    assert shown.exit_code == 0, shown.output
    assert "LakeBusyError" in shown.output and "0.05" in shown.output and "0.10" in shown.output
    log = (project / "lake" / "_logs" / f"{result.run_id}.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in log]
    assert all(e["execution_id"] == result.run_id for e in events)
    assert sum(e["event"] == "RetryScheduled" for e in events) == 2


def test_permanent_failure_is_not_retried_and_the_circuit_opens(tmp_path: Path) -> None:
    project = _project(tmp_path)
    sales = project / "data" / "sales.csv"
    sales.write_bytes(sales.read_bytes().replace(b",card", b",bitcoin"))  # most lines fail a rule
    config = load_config(project / "retail-etl.yaml", env={})
    for _ in range(2):
        with pytest.raises(QualityGateError):
            pipeline.run(config)
    failed = _state(project).executions(limit=10)
    assert [e.status for e in failed] == ["FAILED", "FAILED"]
    assert all(e.error == "QualityGateError" and "above the fail level" in e.cause for e in failed)
    steps = _state(project).execution(failed[0].id).steps
    assert [(s.step, s.attempt) for s in steps] == [("validate", 1)], "a permanent error is not retried"
    with pytest.raises(CircuitOpenError, match="circuit"):
        pipeline.run(config)
    refused = CliRunner().invoke(app, ["circuit", "status", "--config", str(project / "retail-etl.yaml")])
    assert "OPEN" in refused.output.upper()
    reset = CliRunner().invoke(app, ["circuit", "reset", "--config", str(project / "retail-etl.yaml")])
    assert reset.exit_code == 0
    with pytest.raises(QualityGateError):
        pipeline.run(config)  # allowed again (and fails again on the same data)


def test_resume_continues_from_the_failed_step(tmp_path: Path, monkeypatch) -> None:
    project = _project(tmp_path)
    config = load_config(project / "retail-etl.yaml", env={})
    real = analytics_module.analytics_step

    def broken(*args, **kwargs):
        raise QualityGateError("simulated permanent failure in analytics")

    monkeypatch.setattr(analytics_module, "analytics_step", broken)
    with pytest.raises(QualityGateError):
        pipeline.run(config)
    (failed,) = _state(project).executions(limit=1)
    assert failed.status == "FAILED"
    monkeypatch.setattr(analytics_module, "analytics_step", real)
    shown = CliRunner().invoke(app, ["run", "--resume", failed.id, "--format", "json",
                                     "--config", str(project / "retail-etl.yaml")])
    assert shown.exit_code == 0, shown.output
    resumed = json.loads(shown.stdout.splitlines()[-1])
    execution = _state(project).execution(resumed["run_id"])
    assert execution.status == "SUCCEEDED"
    ran = [(s.step, s.status) for s in execution.steps]
    assert ran == [("validate", "SKIPPED"), ("transform", "SKIPPED"), ("analytics", "SUCCEEDED")]
    # The summary is what the resumed execution did: the marts, not "nothing to do".
    assert resumed["resumed_from"] == failed.id and resumed["skipped"] == ["validate", "transform"]
    assert list(resumed["steps"]) == ["analytics"]
    days = _state(project).execution(failed.id).steps[1].result["dates"]
    assert resumed["steps"]["analytics"]["dates"] == days and resumed["steps"]["analytics"]["marts"]["daily_sales"] \
        == len(days) > 0
    assert execution.steps[0].result == _state(project).execution(failed.id).steps[0].result, \
        "a skipped step keeps its result"


def test_each_step_called_on_its_own_returns_the_result_the_run_history_keeps(tmp_path: Path) -> None:
    project = _project(tmp_path)
    config = load_config(project / "retail-etl.yaml", env={})
    lake = pipeline.Lake(config)
    inputs = pipeline.RunInputs()
    with lake.lock():
        validated = pipeline.validate_step(config, lake, "run-a", inputs)
        transformed = pipeline.transform_step(config, lake, "run-a", inputs)
        aggregated = pipeline.analytics_step(config, lake, "run-a", inputs)
        again = pipeline.transform_step(config, lake, "run-b", inputs)
    sales = next(s for s in validated.sources if s.source == "sales")
    assert validated.ingested == {"sales": ["sales.csv"], "products": ["products.csv"]}
    assert sales.rows_read == 300 and sales.rows_valid + sales.rows_quarantined == 300
    assert transformed.dates == validated.dates == aggregated.dates and again == pipeline.TransformResult()
    assert transformed.lines_in == sales.rows_valid == transformed.enriched + transformed.rows_quarantined
    assert aggregated.marts["daily_sales"] == len(validated.dates)
    for result in (validated, transformed, aggregated):
        assert type(result).from_dict(json.loads(json.dumps(result.to_dict()))) == result

    rerun = pipeline.run(config, bookmarks="disable")
    assert pipeline.run_result(_state(project).execution(rerun.run_id), rerun.seconds) == rerun
    figures = [(s.source, s.files, s.rows_read, s.rows_valid, s.rules) for s in rerun.sources]
    assert figures == [(s.source, s.files, s.rows_read, s.rows_valid, s.rules) for s in validated.sources]
