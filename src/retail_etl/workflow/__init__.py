"""The workflow runtime: steps with Step Functions-style Retry/Catch, timeouts, a circuit breaker,
notifications and a recorded history, run locally. Generic: steps are callables."""

from __future__ import annotations

from retail_etl.workflow.circuit import CircuitBreaker, CircuitOpenError, CircuitStatus
from retail_etl.workflow.definition import (
    Catcher, Retrier, StepDef, StepTimeout, WorkflowDef, default_workflow, definition_from_config, to_asl,
)
from retail_etl.workflow.logging import ExecutionLog, LogSettings
from retail_etl.workflow.runner import (
    Runner,
    StepContext,
    StepFn,
    StepResult,
    log_settings,
    runner_from_config,
    workflow_state,
)
from retail_etl.workflow.state import Execution, ExecutionNotFoundError, StepRun, WorkflowState

__all__ = [
    "Catcher", "CircuitBreaker", "CircuitOpenError", "CircuitStatus", "Execution", "ExecutionLog",
    "ExecutionNotFoundError", "LogSettings", "Retrier", "Runner", "StepContext", "StepDef", "StepFn", "StepResult",
    "StepRun", "StepTimeout", "WorkflowDef", "WorkflowState", "default_workflow", "definition_from_config",
    "log_settings", "runner_from_config", "to_asl", "workflow_state",
]
