"""``retail-etl runs list|show`` and ``retail-etl logs``: workflow executions, their attempts and logs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from retail_etl.lake.storage import LOGS_DIR, STATE_DB, Storage, open_storage
from retail_etl.workflow import workflow_state
from retail_etl.workflow.logging import read_log
from retail_etl.workflow.state import STATUSES, Execution, ExecutionNotFoundError, WorkflowState

app = typer.Typer(
    help="List and inspect workflow executions: status, input, error, every step attempt.", no_args_is_help=True
)

ConfigOption = Annotated[
    Optional[Path],  # noqa: UP007 - typer needs Optional
    typer.Option("--config", "-c", help="Path to retail-etl.yaml (default: found from the current folder up)."),
]
_STYLE = {"SUCCEEDED": "green", "FAILED": "red", "RUNNING": "yellow", "ABORTED": "magenta", "SKIPPED": "dim"}


def _storage(config: Path | None) -> Storage:
    from retail_etl.config.loader import load_config

    return open_storage(load_config(config))


def _state(config: Path | None) -> WorkflowState | None:
    """The state database, or None when no execution was ever recorded (nothing is created)."""
    storage = _storage(config)
    return workflow_state(storage) if storage.db_path(STATE_DB).exists() else None


def _table(*columns: str, title: str | None = None) -> Table:
    return Table(*columns, title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                 collapse_padding=True)


def _time(value: str | None) -> str:
    return value[:19].replace("T", " ") if value else "-"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _status(value: str) -> Text:
    return Text(value, style=_STYLE.get(value, ""))


@app.command("list")
def list_runs(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Show this many, newest first.")] = 20,
    status: Annotated[
        Optional[str], typer.Option("--status", help="Only RUNNING, SUCCEEDED, FAILED or ABORTED.")  # noqa: UP007
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Executions, newest first: status, start, duration, error."""
    if status is not None and status.upper() not in STATUSES:
        raise typer.BadParameter(f"choose one of {', '.join(STATUSES)}", param_hint="--status")
    console = Console()
    state = _state(config)
    executions = state.executions(limit=limit, status=status and status.upper()) if state else []
    if not executions:
        console.print("no executions" + (f" with status {status.upper()}" if status else " yet"))
        return
    several = len({e.workflow for e in executions}) > 1
    resumed = any(e.resumed_from for e in executions)
    table = _table()
    table.add_column("execution", no_wrap=True)
    if several:
        table.add_column("workflow")
    for name in ("status", "started (UTC)", "duration"):
        table.add_column(name, no_wrap=True)
    table.add_column("error", overflow="fold")
    if resumed:
        table.add_column("resumed from", no_wrap=True)
    for e in executions:
        cells: list[Text | str] = [e.id, *([e.workflow] if several else []), _status(e.status), _time(e.started_at),
                                   _seconds(e.duration_s), Text(e.error or "")]
        table.add_row(*cells, *([e.resumed_from or ""] if resumed else []))
    console.print(table)


@app.command("show")
def show(
    execution_id: Annotated[str, typer.Argument(help="Execution id (or a unique prefix of it).")],
    events: Annotated[bool, typer.Option("--events", help="Also list the event history.")] = False,
    config: ConfigOption = None,
) -> None:
    """One execution: status, input, start and end, error and cause, then every attempt of every step."""
    console = Console()
    execution = _find(config, execution_id)
    for label, value in _summary(execution):
        console.print(Text.assemble((f"{label:<13}", "bold"), value))
    steps = _table(title="steps")
    for name in ("step", "attempt", "status", "duration", "delay", "rows in", "rows out", "quarantined"):
        steps.add_column(name, no_wrap=True, justify="right" if name.startswith(("rows", "quar")) else "left")
    causes = []
    for r in execution.steps:
        steps.add_row(r.step, str(r.attempt) if r.attempt else "-", _status(r.status), _seconds(r.duration_s),
                      _seconds(r.delay_before_s) if r.delay_before_s else "-", _count(r.rows_in), _count(r.rows_out),
                      _count(r.rows_quarantined))
        if r.error:
            causes.append(Text(f"  {r.step} attempt {r.attempt}: {r.error}: {r.cause}"))
    console.print(steps)
    if causes:
        console.print("errors:", *causes, sep="\n")
    if events:
        history = _table("seq", "time (UTC)", "type", "step", "details", title="events")
        for ev in _state_of(config).events(execution.id):
            history.add_row(str(ev.seq), ev.time[11:23], ev.type, ev.step or "",
                            Text(json.dumps(ev.details, ensure_ascii=False) if ev.details else ""))
        console.print(history)


def _summary(e: Execution) -> list[tuple[str, Text | str]]:
    rows: list[tuple[str, Text | str]] = [
        ("execution", e.id), ("workflow", e.workflow), ("status", _status(e.status)),
        ("input", Text(json.dumps(e.input, ensure_ascii=False))), ("started", f"{_time(e.started_at)} UTC"),
        ("ended", f"{_time(e.ended_at)} UTC" if e.ended_at else "-"), ("duration", _seconds(e.duration_s)),
    ]
    if e.error or e.cause:
        rows += [("error", Text(e.error or "")), ("cause", Text(e.cause or ""))]
    if e.resumed_from:
        rows.append(("resumed from", e.resumed_from))
    rows.append(("process", f"{e.pid} on {e.host}"))
    if e.status == "RUNNING":
        rows.append(("heartbeat", f"{_time(e.heartbeat_at)} UTC"))
    return rows


def _state_of(config: Path | None) -> WorkflowState:
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
