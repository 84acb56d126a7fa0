"""Workflow definitions: validation, error names, defaults, YAML, Amazon States Language export."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from retail_etl.config.loader import load_config
from retail_etl.errors import ConfigError, LakeBusyError, QualityGateError
from retail_etl.workflow import (
    Catcher, Retrier, StepDef, StepTimeout, WorkflowDef, default_workflow, definition_from_config, to_asl,
)
from retail_etl.workflow.definition import error_name, error_names, is_transient

STEPS = ("validate", "transform", "analytics")


def test_retrier_defaults_are_the_aws_ones() -> None:
    r = Retrier(("Transient",))
    assert (r.interval_seconds, r.max_attempts, r.backoff_rate, r.max_delay_seconds, r.jitter_strategy) == (
        1, 3, 2.0, None, "NONE"
    )


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Retrier(()), "at least one error name"),
        (lambda: Retrier(("States.ALL", "Transient")), "States.ALL must be the only name"),
        (lambda: Retrier(("States.Timout",)), "unknown error name 'States.Timout'"),
        (lambda: Retrier(("X",), max_attempts=-1), "max_attempts must be an integer >= 0"),
        (lambda: Retrier(("X",), interval_seconds=0), "interval_seconds must be > 0"),
        (lambda: Retrier(("X",), backoff_rate=0.5), "backoff_rate must be >= 1.0"),
        (lambda: Retrier(("X",), max_delay_seconds=0), "max_delay_seconds must be > 0"),
        (lambda: Retrier(("X",), jitter_strategy="HALF"), "jitter_strategy must be FULL or NONE"),
        (lambda: Retrier(("X",), interval_seconds=100_000_000), "interval_seconds must be at most 99,999,999"),
        (lambda: Retrier(("X",), max_attempts=100_000_000), "max_attempts must be at most 99,999,999"),
        (lambda: Retrier(("X",), max_delay_seconds=31_622_401), "max_delay_seconds must be at most 31,622,400"),
        (lambda: Catcher(("X",), result_path="error"), "result_path must be a JSONPath"),
        (lambda: Catcher(("X",), next_state="Elsewhere"), "next_state must be 'NotifyFailure'"),
        (lambda: StepDef("a", retry=(Retrier(("States.ALL",)), Retrier(("X",)))), "must be the last one"),
        (lambda: StepDef("a", catch=(Catcher(("States.ALL",)), Catcher(("X",)))), "must be the last one"),
        (lambda: StepDef("a", timeout_seconds=0), "timeout_seconds must be > 0"),
        (lambda: StepDef("NotifyFailure"), "reserved"),
        (lambda: WorkflowDef("w", ()), "has no steps"),
        (lambda: WorkflowDef("w", (StepDef("a"), StepDef("a"))), "duplicate step names a"),
    ],
)
def test_invalid_definitions_are_rejected(build, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_unknown_error_names_are_allowed_as_exception_class_names() -> None:
    assert Retrier(("SomeCustomError", "LakeBusyError")).error_equals == ("SomeCustomError", "LakeBusyError")


def test_error_names_of_a_transient_retail_error() -> None:
    names = error_names(LakeBusyError("busy"))
    assert {"States.ALL", "States.TaskFailed", "Transient", "LakeBusyError", "TransientError",
            "RetailEtlError", "Exception"} <= names
    assert "Permanent" not in names and "States.Timeout" not in names


def test_error_names_of_a_timeout_exclude_task_failed() -> None:
    exc = StepTimeout("late")
    assert error_name(exc) == "States.Timeout"
    assert {"States.ALL", "States.Timeout", "Transient", "StepTimeout"} <= error_names(exc)
    assert "States.TaskFailed" not in error_names(exc)


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (LakeBusyError("busy"), True),
        (QualityGateError("too many bad rows"), False),
        (ValueError("bad"), False),
        (KeyError("k"), False),
        (OSError("disk"), True),
        (TimeoutError("slow"), True),
        (ConnectionResetError("reset"), True),
        (FileNotFoundError("gone"), False),
        (PermissionError(13, "Permission denied"), False),
        (sqlite3.OperationalError("database is locked"), True),
        (sqlite3.OperationalError("no such table: x"), False),
    ],
)
def test_transient_or_permanent(exc: Exception, transient: bool) -> None:
    assert is_transient(exc) is transient
    assert ("Transient" if transient else "Permanent") in error_names(exc)


def test_default_workflow_policy() -> None:
    wf = default_workflow(STEPS)
    assert wf.step_names == ("validate", "transform", "analytics")
    for step in wf.steps:
        assert step.retry == (Retrier(("Transient",), 2, 3, 2.0, 60, "FULL"),)
        assert step.catch == (Catcher(("States.ALL",), "NotifyFailure", "$.error"),)
        assert step.timeout_seconds is None


def _with_yaml(config: Path, text: str) -> Path:
    config.write_text(config.read_text() + text)
    return config


def test_workflow_section_overrides_steps(scaffold_config: Path) -> None:
    _with_yaml(scaffold_config, """
workflow:
  name: nightly
  timeout_seconds: 600
  retry:
    - error_equals: [LakeBusyError]
      interval_seconds: 5
      max_attempts: 2
    - error_equals: [States.ALL]
      max_attempts: 1
  steps:
    transform:
      timeout_seconds: 1800
      retry: []
  circuit: {failure_threshold: 5, cooldown_seconds: 60}
""")
    config = load_config(scaffold_config, env={})
    wf = definition_from_config(config.workflow, STEPS)
    assert wf.name == "nightly"
    validate, transform, analytics = wf.steps
    assert validate.timeout_seconds == 600 and transform.timeout_seconds == 1800
    assert validate.retry == (Retrier(("LakeBusyError",), 5, 2), Retrier(("States.ALL",), max_attempts=1))
    assert transform.retry == () and analytics.retry == validate.retry
    assert config.workflow.circuit.failure_threshold == 5


def test_no_workflow_section_gives_the_default_workflow(scaffold_config: Path) -> None:
    config = load_config(scaffold_config, env={})
    assert definition_from_config(config.workflow, STEPS) == default_workflow(STEPS)


def test_unknown_step_override_is_a_config_error(scaffold_config: Path) -> None:
    _with_yaml(scaffold_config, "workflow:\n  steps:\n    transfrom: {timeout_seconds: 5}\n")
    with pytest.raises(ConfigError, match="unknown step 'transfrom'") as info:
        definition_from_config(load_config(scaffold_config, env={}).workflow, STEPS)
    assert "validate, transform, analytics" in str(info.value)


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("workflow:\n  retry:\n    - error_equals: [States.ALL]\n    - error_equals: [Transient]\n",
         "must be the last one"),
        ("workflow:\n  retry:\n    - error_equals: [Transient]\n      backoff_rate: 0.5\n",
         "workflow.retry.0.backoff_rate"),
        ("workflow:\n  retry:\n    - error_equals: [States.Bogus]\n", "unknown error name 'States.Bogus'"),
        ("workflow:\n  circuit: {failure_threshld: 2}\n", "did you mean 'failure_threshold'"),
        ("workflow:\n  retry:\n    - error_equals: [Transient]\n      interval_seconds: 100000000\n",
         "workflow.retry.0.interval_seconds"),
        ("workflow:\n  retry:\n    - error_equals: [Transient]\n      max_attempts: 100000000\n",
         "workflow.retry.0.max_attempts"),
        ("workflow:\n  steps:\n    transform:\n      retry:\n        - error_equals: [Transient]\n"
         "          max_delay_seconds: 31622401\n", "max_delay_seconds"),
    ],
)
def test_bad_workflow_yaml_names_file_and_key(scaffold_config: Path, yaml_text: str, message: str) -> None:
    _with_yaml(scaffold_config, yaml_text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(scaffold_config, env={})
    assert "retail-etl.yaml:" in str(info.value) and "workflow." in str(info.value)


def test_to_asl_is_a_valid_state_machine_shape() -> None:
    wf = WorkflowDef("retail-etl", (
        StepDef("validate", timeout_seconds=90.5, retry=(Retrier(("Transient",), 2, 3, 2.0, 60, "FULL"),),
                catch=(Catcher(("States.ALL",)),)),
        StepDef("transform", catch=(Catcher(("States.ALL",)),)),
    ), comment="nightly")
    asl = to_asl(wf, topic_arn="arn:aws:sns:eu-west-1:123456789012:alerts")
    states = asl["States"]
    assert asl["StartAt"] == "validate" and asl["Comment"] == "nightly"
    assert states["validate"]["TimeoutSeconds"] == 91
    assert states["validate"]["Retry"] == [{"ErrorEquals": ["Transient"], "IntervalSeconds": 2, "MaxAttempts": 3,
                                            "BackoffRate": 2.0, "MaxDelaySeconds": 60, "JitterStrategy": "FULL"}]
    assert states["validate"]["Next"] == "transform" and states["transform"]["End"] is True
    assert "Retry" not in states["transform"]
    assert states["NotifyFailure"]["Parameters"]["TopicArn"].endswith(":alerts")
    assert states["ExecutionFailed"]["Type"] == "Fail"
    # every transition leads to a declared state; terminal states have no Next
    for name, state in states.items():
        targets = [state.get("Next")] + [c["Next"] for c in state.get("Catch", [])]
        assert all(t in states for t in targets if t), name
        assert state["Type"] in ("Task", "Fail")
        if state["Type"] == "Fail" or state.get("End"):
            assert "Next" not in state
        else:
            assert "Next" in state


def test_to_asl_passes_an_amazon_states_language_parser() -> None:
    """The ASL grammar of LocalStack's Step Functions parser, as shipped in moto (a dev dependency)."""
    import json

    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    definition = default_workflow(STEPS)
    definition = WorkflowDef(definition.name, (StepDef("validate", timeout_seconds=600, retry=definition.steps[0].retry,
                                                       catch=definition.steps[0].catch), *definition.steps[1:]))
    AmazonStateLanguageParser.parse(json.dumps(to_asl(definition)))
    broken = to_asl(definition)
    broken["States"]["validate"]["Retry"][0]["JitterStrategy"] = "HALF"
    with pytest.raises(Exception, match="expecting"):
        AmazonStateLanguageParser.parse(json.dumps(broken))


def test_limits_at_the_maximum_are_accepted() -> None:
    r = Retrier(("X",), interval_seconds=99_999_999, max_attempts=99_999_999, max_delay_seconds=31_622_400)
    assert (r.interval_seconds, r.max_attempts, r.max_delay_seconds) == (99_999_999, 99_999_999, 31_622_400)


def test_states_runtime_is_a_known_name_and_never_task_failed() -> None:
    from retail_etl.workflow.definition import StatesRuntimeError

    Retrier(("States.Runtime",))  # a known name: no error
    names = error_names(StatesRuntimeError("bad result"))
    assert "States.Runtime" in names and "States.TaskFailed" not in names
    assert error_name(StatesRuntimeError("bad result")) == "States.Runtime"
    assert not is_transient(StatesRuntimeError("bad result"))


def _asl_with_discarding_catcher() -> dict:
    return to_asl(WorkflowDef("w", (
        StepDef("validate", retry=(Retrier(("Transient",)),), catch=(Catcher(("Permanent",), result_path=None),
                                                                       Catcher(("States.ALL",)))),
        StepDef("transform", catch=(Catcher(("States.ALL",)),)),
    )), topic_arn="arn:aws:sns:eu-west-1:123456789012:alerts")


def test_to_asl_of_a_catcher_with_result_path_null_never_reads_the_discarded_error() -> None:
    states = _asl_with_discarding_catcher()["States"]
    discard, keep = states["validate"]["Catch"]
    assert discard == {"ErrorEquals": ["Permanent"], "ResultPath": None, "Next": "NotifyFailureErrorDiscarded"}
    assert keep["Next"] == "NotifyFailure" and keep["ResultPath"] == "$.error"
    notify = states["NotifyFailureErrorDiscarded"]
    assert "$.error" not in json.dumps(notify) and notify["Next"] == "ExecutionFailedErrorDiscarded"
    assert states["ExecutionFailedErrorDiscarded"] == {
        "Type": "Fail", "Error": "States.TaskFailed", "Cause": "a step failed; its catcher discarded the error"}


@pytest.mark.parametrize("build", [lambda: to_asl(default_workflow(STEPS)), _asl_with_discarding_catcher])
def test_to_asl_passes_asl_validator(build, tmp_path: Path) -> None:
    """AWS's state-language rules as the npm asl-validator checks them (installed by .ci/install)."""
    import subprocess

    validator = Path(__file__).resolve().parents[3] / ".ci" / "node_modules" / ".bin" / "asl-validator"
    assert validator.exists(), "run ./.ci/install to install asl-validator"
    path = tmp_path / "state-machine.json"
    path.write_text(json.dumps(build()))
    done = subprocess.run([str(validator), "--json-path", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    broken = build()
    broken["States"]["validate"]["Retry"][0]["MaxAttempts"] = -1
    path.write_text(json.dumps(broken))
    done = subprocess.run([str(validator), "--json-path", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
