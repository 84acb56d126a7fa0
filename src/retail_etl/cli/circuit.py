"""``retail-etl circuit status|reset``: the workflow's circuit breaker."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.text import Text

from retail_etl.lake.storage import open_storage
from retail_etl.workflow import workflow_state
from retail_etl.workflow.circuit import CLOSED, CircuitBreaker
from retail_etl.workflow.state import iso

circuit_app = typer.Typer(
    help="The circuit breaker that pauses the workflow after consecutive failed executions.", no_args_is_help=True
)

ConfigOption = Annotated[
    Optional[Path],  # noqa: UP007 - typer needs Optional
    typer.Option("--config", "-c", help="Path to retail-etl.yaml (default: found from the current folder up)."),
]
_STYLE = {"CLOSED": "green", "OPEN": "red", "HALF_OPEN": "yellow"}


def _breaker(config: Path | None) -> tuple[CircuitBreaker, bool]:
    from retail_etl.config.loader import load_config

    cfg = load_config(config)
    state = workflow_state(open_storage(cfg))
    c = cfg.workflow.circuit
    breaker = CircuitBreaker(state, cfg.workflow.name, failure_threshold=c.failure_threshold,
                             cooldown_seconds=c.cooldown_seconds)
    return breaker, c.enabled


@circuit_app.command("status")
def status(config: ConfigOption = None) -> None:
    """State (CLOSED, OPEN, HALF_OPEN), consecutive failures, when it opened and half-opens, the last error."""
    breaker, enabled = _breaker(config)
    s = breaker.status()
    console = Console()
    rows: list[tuple[str, Text | str]] = [
        ("workflow", s.workflow),
        ("state", Text(s.state, style=_STYLE[s.state])),
        ("failures", f"{s.failures} consecutive (opens at {s.failure_threshold})"),
    ]
    if s.state != CLOSED:
        rows += [("opened at", iso(s.opened_at) if s.opened_at else "-"),
                 ("half-opens at", iso(s.half_open_at) if s.half_open_at else "-")]
    if s.trial_execution:
        rows.append(("trial", s.trial_execution))
    rows += [("last execution", s.last_execution or "-"), ("last error", Text(s.last_error or "-"))]
    for label, value in rows:
        console.print(Text.assemble((f"{label:<15}", "bold"), value))
    if not enabled:
        console.print("the circuit breaker is disabled (workflow.circuit.enabled: false)")
    elif s.state != CLOSED:
        console.print("`retail-etl circuit reset` closes it now")


@circuit_app.command("reset")
def reset(config: ConfigOption = None) -> None:
    """Close the circuit now (after fixing the cause): the next execution starts normally."""
    breaker, _ = _breaker(config)
    before = breaker.reset()
    Console().print(f"circuit of workflow {before.workflow!r} closed (was {before.state}, "
                    f"{before.failures} consecutive failure(s))", markup=False, highlight=False)
