"""A run: the three steps, in order, under the workflow runner and the lake lock.

The runner gets the steps as plain callables and their order from :data:`STEPS`; it records each
step's typed result with its attempt, and the run's :class:`RunResult` is read back from that record,
so a resumed execution reports what it did.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from retail_etl.config.model import Config
from retail_etl.lake.lake import Lake
from retail_etl.notify import quarantine_rate_alert
from retail_etl.pipeline import analytics, transform, validate
from retail_etl.pipeline.results import RESULT_TYPES, RunInputs, RunResult, StepOutput, ValidateResult
from retail_etl.pipeline.tableio import Say

if TYPE_CHECKING:
    from retail_etl.workflow import Execution, StepContext, StepFn, StepResult

StepBody = Callable[..., StepOutput]

#: The steps in the order they run, each looked up in its module when called.
STEPS: tuple[tuple[str, Callable[[], StepBody]], ...] = (
    ("validate", lambda: validate.validate_step),
    ("transform", lambda: transform.transform_step),
    ("analytics", lambda: analytics.analytics_step),
)


def run(
    config: Config,
    *,
    progress: Say | None = None,
    date: dt.date | None = None,
    ingest_date: dt.date | None = None,
    bookmarks: str = "enable",
    inputs: RunInputs | None = None,
    resume: str | None = None,
    wait: bool = False,
    log_format: str = "text",
    log_stream: TextIO | None = None,
) -> RunResult:
    """One execution of the workflow (validate → transform → analytics) under the lake lock.

    With ``date`` (a business date) the run re-derives sale date ``date`` from all validated lines,
    after validating what is new. With ``ingest_date`` only raw files ingested that day are
    processed. ``inputs`` gives all three at once, as an execution input (:class:`RunInputs`,
    e.g. from ``RunInputs.from_json('{"date": "2024-01-15"}')``). ``bookmarks`` is
    ``enable`` (process new files and remember them), ``pause`` (process new files, remember
    nothing) or ``disable`` (re-derive every raw file, remember nothing). ``resume`` continues a
    failed execution from its failed step, with its original input. Failures re-raise the step's
    error after the runner has recorded it, retried it (transient errors) and notified (see ``workflow``).
    """
    from retail_etl.workflow import runner_from_config

    lake = Lake(config)
    started = time.perf_counter()
    runner = runner_from_config(
        config, pipeline_steps(lake, progress or (lambda _msg: None)), storage=lake.storage,
        log_format=log_format, stream=log_stream,
    )
    with lake.lock(wait=wait):
        if resume:
            execution = runner.resume(resume)
        else:
            request = inputs or RunInputs(ingest_date=ingest_date, bookmarks=bookmarks, date=date)
            execution = runner.start(request.to_request())
    execution.raise_for_status()
    return run_result(execution, time.perf_counter() - started)


def pipeline_steps(lake: Lake, say: Say) -> dict[str, StepFn]:
    """The workflow's steps over ``lake``, in order, as the runner calls them."""
    return {name: _step(name, body, lake, say) for name, body in STEPS}


def _step(name: str, body: Callable[[], StepBody], lake: Lake, say: Say) -> StepFn:
    from retail_etl.workflow import StepResult

    def call(ctx: StepContext) -> StepResult:
        result = body()(lake.config, lake, ctx.execution_id, RunInputs.from_request(ctx.input), say=say)
        if isinstance(result, ValidateResult):
            _warn_quarantine_rates(lake.config, result, ctx)
            _record_warnings(result, ctx)
        return StepResult(result.rows_in, result.rows_out, result.rows_quarantined, result.details(),
                          result=result.to_dict())

    call.__name__ = f"{name}_step"
    return call


def _record_warnings(result: ValidateResult, ctx: StepContext) -> None:
    """Each source's notices and warnings as warning events in the execution's history."""
    for source, notices in result.notices.items():
        for notice in notices:
            ctx.warn("SourceWarning", source=source, message=notice)
    for s in result.sources:
        for warning in s.warnings:
            ctx.warn("SourceWarning", source=s.source, message=warning)


def _warn_quarantine_rates(config: Config, result: ValidateResult, ctx: StepContext) -> None:
    for s in result.sources:
        warn = config.sources[s.source].thresholds.quarantine_rate.warn
        if warn is not None and s.quarantine_rate > warn:
            ctx.notify(quarantine_rate_alert(
                s.source, s.quarantine_rate, warn, partition=",".join(sorted(s.files)), run_id=ctx.execution_id,
                rows_read=s.rows_read, rows_quarantined=s.rows_quarantined,
            ))


def run_result(execution: Execution, seconds: float) -> RunResult:
    """The summary of a recorded execution: the typed results of the steps it ran itself."""
    steps: dict[str, StepOutput] = {}
    skipped = []
    for attempt in execution.steps:
        if attempt.status == "SKIPPED":
            skipped.append(attempt.step)
        elif attempt.status == "SUCCEEDED" and attempt.result is not None and attempt.step in RESULT_TYPES:
            steps[attempt.step] = RESULT_TYPES[attempt.step].from_dict(attempt.result)
    return RunResult(execution.id, execution.status, seconds, steps, execution.resumed_from, skipped)
