"""``retail-etl runs list|show`` and ``retail-etl logs``: workflow executions, their attempts and logs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.text import Text

from retail_etl.cli.output import (
    Column, FormatOption, cell, check_format, new_table, print_fields, print_listing, stdout_console, wide,
    write_csv, write_json,
)

if TYPE_CHECKING:
    from retail_etl.lake.storage import Storage
    from retail_etl.workflow.state import Execution, StepRun, WorkflowState

app = typer.Typer(
    help="List and inspect workflow executions: status, input, error, every step attempt.", no_args_is_help=True
)

ConfigOption = Annotated[
    Optional[Path],  # noqa: UP007 - typer needs Optional
    typer.Option("--config", "-c", help="Path to retail-etl.yaml (default: found from the current folder up)."),
]
_STYLE = {"SUCCEEDED": "green", "FAILED": "red", "RUNNING": "yellow", "ABORTED": "magenta", "SKIPPED": "dim"}
_STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "ABORTED")


def _storage(config: Path | None) -> Storage:
    from retail_etl.config.loader import load_config
    from retail_etl.lake.storage import open_storage

    return open_storage(load_config(config))


def _state(config: Path | None) -> WorkflowState | None:
    """The state database, or None when no execution was ever recorded (nothing is created)."""
    from retail_etl.lake.catalog import existing_db
    from retail_etl.lake.storage import STATE_DB
    from retail_etl.workflow import workflow_state

    storage = _storage(config)
    return workflow_state(storage) if existing_db(storage, STATE_DB) else None


def _time(value: str | None) -> str:
    return value[:19].replace("T", " ") if value else "-"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _status_style(value: str) -> str:
    return _STYLE.get(value, "")


def _execution_record(e: Execution) -> dict[str, Any]:
    return {"id": e.id, "workflow": e.workflow, "status": e.status, "input": e.input, "started_at": e.started_at,
            "ended_at": e.ended_at, "duration_s": e.duration_s, "error": e.error, "cause": e.cause,
            "resumed_from": e.resumed_from, "host": e.host, "pid": e.pid, "heartbeat_at": e.heartbeat_at}


_STEP_KEYS = ["execution_id", "step", "attempt", "status", "started_at", "ended_at", "duration_s", "delay_before_s",
              "rows_in", "rows_out", "rows_quarantined", "error", "cause", "details"]


def _step_record(execution_id: str, r: StepRun) -> dict[str, Any]:
    return {"execution_id": execution_id, "step": r.step, "attempt": r.attempt, "status": r.status,
            "started_at": r.started_at, "ended_at": r.ended_at, "duration_s": r.duration_s,
            "delay_before_s": r.delay_before_s, "rows_in": r.rows_in, "rows_out": r.rows_out,
            "rows_quarantined": r.rows_quarantined, "error": r.error, "cause": r.cause, "details": r.details}


@app.command("list")
def list_runs(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Show this many, newest first.")] = 20,
    status: Annotated[
        Optional[str], typer.Option("--status", help="Only RUNNING, SUCCEEDED, FAILED or ABORTED.")  # noqa: UP007
    ] = None,
    fmt: FormatOption = "table",
    config: ConfigOption = None,
) -> None:
    """Executions, newest first: status, start, duration, error."""
    check_format(fmt)
    if status is not None and status.upper() not in _STATUSES:
        raise typer.BadParameter(f"choose one of {', '.join(_STATUSES)}", param_hint="--status")
    state = _state(config)
    executions = state.executions(limit=limit, status=status and status.upper()) if state else []
    records = [_execution_record(e) for e in executions]
    several = len({e.workflow for e in executions}) > 1
    resumed = any(e.resumed_from for e in executions)
    columns = [Column("id", "execution"), *([Column("workflow")] if several or fmt != "table" else []),
               Column("status", style=_status_style), Column("started_at", "started (UTC)", show=_time),
               Column("ended_at", "ended (UTC)", show=_time) if fmt != "table" else None,
               Column("duration_s", "duration", show=_seconds), Column("error", show=lambda v: v or ""),
               Column("cause") if fmt != "table" else None,
               *([Column("resumed_from", "resumed from", show=lambda v: v or "")] if resumed or fmt != "table"
                 else [])]
    empty = "no executions" + (f" with status {status.upper()}" if status else " yet")
    print_listing(stdout_console(), [c for c in columns if c is not None], records, fmt, empty=empty)


@app.command("show")
def show(
    execution_id: Annotated[str, typer.Argument(help="Execution id (or a unique prefix of it).")],
    events: Annotated[bool, typer.Option("--events", help="Also list the event history.")] = False,
    fmt: FormatOption = "table",
    config: ConfigOption = None,
) -> None:
    """One execution: status, input, start and end, error and cause, then every attempt of every step.

    As JSON: one object, with ``steps`` (and ``events``). As CSV: one line per step attempt (with
    ``--events``, one line per event)."""
    check_format(fmt)
    console = stdout_console()
    state = _state_of(config)
    execution = state.execution(execution_id)
    history = [{"seq": ev.seq, "time": ev.time, "type": ev.type, "step": ev.step, "details": ev.details}
               for ev in state.events(execution.id)] if events else []
    steps = [_step_record(execution.id, r) for r in execution.steps]
    if fmt == "json":
        write_json(console, {**_execution_record(execution), "steps": steps,
                             **({"events": history} if events else {})})
        return
    if fmt == "csv":
        rows = history if events else steps
        keys = ["seq", "time", "type", "step", "details"] if events else _STEP_KEYS
        write_csv(console, keys, ([r[k] for k in keys] for r in rows))
        return
    print_fields(console, _summary(execution), width=13, styles={"status": _status_style(execution.status)})
    table = new_table("step", "attempt", "status", "duration", "delay", "rows in", "rows out", "quarantined",
                      title="steps", right=("rows in", "rows out", "quarantined"))
    causes = []
    for r in execution.steps:
        table.add_row(cell(r.step), cell(str(r.attempt) if r.attempt else "-"), cell(r.status, _status_style(r.status)),
                      cell(_seconds(r.duration_s)), cell(_seconds(r.delay_before_s) if r.delay_before_s else "-"),
                      cell(_count(r.rows_in)), cell(_count(r.rows_out)), cell(_count(r.rows_quarantined)))
        if r.error:
            causes.append(cell(f"  {r.step} attempt {r.attempt}: {r.error}: {r.cause}"))
    out = wide(console)
    out.print(table)
    replaced = [cell(f"  {x['source']}/{x['file']} (delivery {x['delivery_id']} replaces {len(x['replaced'])} "
                     f"earlier): {x['rows_removed']:,} rows removed, {x['rows_added']:,} rows added")
                for r in execution.steps if r.status == "SUCCEEDED" for x in r.details.get("replacements", [])]
    if replaced:
        out.print(Text("replaced:"), *replaced, sep="\n")
    if causes:
        out.print(Text("errors:"), *causes, sep="\n")
    if events:
        listing = new_table("seq", "time (UTC)", "type", "step", "details", title="events")
        for ev in history:
            listing.add_row(cell(str(ev["seq"])), cell(ev["time"][11:23]), cell(ev["type"]), cell(ev["step"] or ""),
                            cell(json.dumps(ev["details"], ensure_ascii=False) if ev["details"] else ""))
        out.print(listing)


def _summary(e: Execution) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [
        ("execution", e.id), ("workflow", e.workflow), ("status", e.status),
        ("input", json.dumps(e.input, ensure_ascii=False)), ("started", f"{_time(e.started_at)} UTC"),
        ("ended", f"{_time(e.ended_at)} UTC" if e.ended_at else "-"), ("duration", _seconds(e.duration_s)),
    ]
    if e.error or e.cause:
        rows += [("error", e.error or ""), ("cause", e.cause or "")]
    if e.resumed_from:
        rows.append(("resumed from", e.resumed_from))
    rows.append(("process", f"{e.pid} on {e.host}"))
    if e.status == "RUNNING":
        rows.append(("heartbeat", f"{_time(e.heartbeat_at)} UTC"))
    return rows


def _state_of(config: Path | None) -> WorkflowState:
    from retail_etl.workflow.state import ExecutionNotFoundError

    state = _state(config)
    if state is None:
        raise ExecutionNotFoundError("no executions recorded yet", hint="run `retail-etl run` first")
    return state


def _find(config: Path | None, execution_id: str) -> Execution:
    return _state_of(config).execution(execution_id)


def logs_command(
    execution_id: Annotated[str, typer.Argument(help="Execution id (or a unique prefix of it).")],
    log_format: Annotated[str, typer.Option("--log-format", help="text (plain lines) or json (as stored).")] = "text",
    config: ConfigOption = None,
) -> None:
    """Print an execution's log (<lake>/_logs/<execution_id>.jsonl)."""
    from retail_etl.lake.storage import LOGS_DIR
    from retail_etl.workflow.logging import read_log
    from retail_etl.workflow.state import ExecutionNotFoundError

    if log_format not in ("text", "json"):
        raise typer.BadParameter("choose text or json", param_hint="--log-format")
    execution = _find(config, execution_id)
    storage = _storage(config)
    rel = f"{LOGS_DIR}/{execution.id}.jsonl"
    text = storage.read_text(rel)
    if text is None:
        raise ExecutionNotFoundError(f"no log file for {execution.id} at {storage.uri(rel)}",
                                     hint="the log folder may have been cleaned up")
    for line in read_log(text, log_format):  # type: ignore[arg-type]
        typer.echo(line)
