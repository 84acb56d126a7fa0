"""``retail-etl circuit status|reset``: the workflow's circuit breaker."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.text import Text

from retail_etl.cli.output import (
    FormatOption, check_format, print_fields, stdout_console, write_csv, write_json,
)

if TYPE_CHECKING:
    from retail_etl.workflow.circuit import CircuitBreaker, CircuitStatus

circuit_app = typer.Typer(
    help="The circuit breaker that pauses the workflow after consecutive failed executions.", no_args_is_help=True
)

ConfigOption = Annotated[
    Optional[Path],  # noqa: UP007 - typer needs Optional
    typer.Option("--config", "-c", help="Path to retail-etl.yaml (default: found from the current folder up)."),
]
_STYLE = {"CLOSED": "green", "OPEN": "red", "HALF_OPEN": "yellow"}


def _breaker(config: Path | None) -> tuple[CircuitBreaker, bool]:
    """The workflow's circuit breaker, and whether it is enabled."""
    from retail_etl.config.loader import load_config
    from retail_etl.lake.storage import open_storage
    from retail_etl.workflow import workflow_state
    from retail_etl.workflow.circuit import CircuitBreaker

    cfg = load_config(config)
    c = cfg.workflow.circuit
    breaker = CircuitBreaker(workflow_state(open_storage(cfg)), cfg.workflow.name,
                             failure_threshold=c.failure_threshold, cooldown_seconds=c.cooldown_seconds)
    return breaker, c.enabled


def _status(config: Path | None) -> tuple[CircuitStatus, bool]:
    """The circuit's status; a lake without a state database has a closed circuit (and gets no
    database from being asked)."""
    from retail_etl.config.loader import load_config
    from retail_etl.lake.catalog import existing_db
    from retail_etl.lake.storage import STATE_DB, open_storage
    from retail_etl.workflow.circuit import CLOSED, CircuitStatus

    cfg = load_config(config)
    c = cfg.workflow.circuit
    if existing_db(open_storage(cfg), STATE_DB) is None:
        return CircuitStatus(cfg.workflow.name, CLOSED, 0, c.failure_threshold), c.enabled
    breaker, enabled = _breaker(config)
    return breaker.status(), enabled


@circuit_app.command("status")
def status(fmt: FormatOption = "table", config: ConfigOption = None) -> None:
    """State (CLOSED, OPEN, HALF_OPEN), consecutive failures, when it opened and half-opens, the last error.

    As JSON: one object; as CSV: a header and one line."""
    from retail_etl.workflow.circuit import CLOSED
    from retail_etl.workflow.state import iso

    check_format(fmt)
    s, enabled = _status(config)
    console = stdout_console()
    record: dict[str, Any] = {
        "workflow": s.workflow, "state": s.state, "enabled": enabled, "failures": s.failures,
        "failure_threshold": s.failure_threshold, "opened_at": iso(s.opened_at) if s.opened_at else None,
        "half_open_at": iso(s.half_open_at) if s.half_open_at else None, "trial_execution": s.trial_execution,
        "last_execution": s.last_execution, "last_error": s.last_error,
    }
    if fmt == "json":
        write_json(console, record)
        return
    if fmt == "csv":
        write_csv(console, list(record), [list(record.values())])
        return
    rows: list[tuple[str, Any]] = [
        ("workflow", s.workflow), ("state", s.state),
        ("failures", f"{s.failures} consecutive (opens at {s.failure_threshold})"),
    ]
    if s.state != CLOSED:
        rows += [("opened at", record["opened_at"] or "-"), ("half-opens at", record["half_open_at"] or "-")]
    if s.trial_execution:
        rows.append(("trial", s.trial_execution))
    rows += [("last execution", s.last_execution or "-"), ("last error", s.last_error or "-")]
    print_fields(console, rows, styles={"state": _STYLE[s.state]})
    if not enabled:
        console.print(Text("the circuit breaker is disabled (workflow.circuit.enabled: false)"))
    elif s.state != CLOSED:
        console.print(Text("`retail-etl circuit reset` closes it now"))


@circuit_app.command("reset")
def reset(config: ConfigOption = None) -> None:
    """Close the circuit now (after fixing the cause): the next execution starts normally."""
    breaker, _ = _breaker(config)
    before = breaker.reset()
    stdout_console().print(Text(f"circuit of workflow {before.workflow!r} closed (was {before.state}, "
                                f"{before.failures} consecutive failure(s))"))
