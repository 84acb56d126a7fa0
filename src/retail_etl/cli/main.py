"""The ``retail-etl`` command line.

Known errors become one line (plus a hint) and a conventional exit code; ``--debug`` shows
the traceback. Exit codes: 0 ok, 1 error, 2 usage, 3 quality gate breached, 4 run refused because the
circuit is open, 75 lake busy or another transient error that outlasted its retries (try again),
130 interrupted.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.text import Text

try:  # recent Typer vendors Click: its exceptions are not those of the click package
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older Typer
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError

from retail_etl.cli import bookmarks as bookmarks_cli
from retail_etl.cli import catalog as catalog_cli
from retail_etl.cli import circuit as circuit_cli
from retail_etl.cli import doctor as doctor_cli
from retail_etl.cli import runs as runs_cli
from retail_etl.cli.output import RUN_FORMATS, print_run, print_table
from retail_etl.errors import QualityGateError
from retail_etl.workflow.circuit import CircuitOpenError

EXIT_ERROR = 1
EXIT_QUALITY = 3
EXIT_CIRCUIT_OPEN = 4
EXIT_TEMPFAIL = 75
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="retail-etl",
    help="Batch ETL for retail sales: raw zone, quality rules with quarantine, Iceberg tables, SQL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(catalog_cli.app, name="catalog")
app.add_typer(runs_cli.app, name="runs")
app.command("logs")(runs_cli.logs_command)
app.add_typer(circuit_cli.circuit_app, name="circuit")
app.add_typer(bookmarks_cli.app, name="bookmarks")
app.command("doctor")(doctor_cli.doctor_command)
console = Console()
err = Console(stderr=True)

ConfigOption = Annotated[
    Optional[Path],  # noqa: UP007 - typer needs Optional
    typer.Option("--config", "-c", help="Path to retail-etl.yaml (default: found from the current folder up)."),
]


class _State:
    debug = False


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("retail-etl")
        except PackageNotFoundError:  # run from a source tree that is not installed
            from retail_etl import __version__ as number
        typer.echo(f"retail-etl {number}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    _State.debug = debug


def _config(path: Path | None):
    from retail_etl.config.loader import load_config

    return load_config(path)


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the project in.")],
    rows: Annotated[int, typer.Option(min=0, help="Sales lines in the sample data.")] = 10_000,
    force: Annotated[bool, typer.Option(help="Write into a folder that is not empty.")] = False,
) -> None:
    """Create a working project: config, sample sales and products, README."""
    from retail_etl.scaffold import create_project

    created = create_project(directory, rows=rows, force=force)
    console.print(Text.assemble("Created project in ", (str(directory), "bold"), ":"))
    for path in created:
        console.print(Text(f"  {path.relative_to(directory)}"))
    console.print(Text.assemble("\nNext: ", (f"cd {directory} && retail-etl run", "bold")))


@app.command("sample-data")
def sample_data(
    out: Annotated[Path, typer.Option("--out", help="Folder to write sales.csv and products.csv to.")],
    rows: Annotated[int, typer.Option("--rows", min=0, help="Sales lines to write.")] = 10_000,
    days: Annotated[int, typer.Option("--days", min=1, help="Days of sales, starting at --start.")] = 30,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed: same seed, same bytes.")] = 42,
    dirty_rate: Annotated[float, typer.Option("--dirty-rate", help="Share of lines with realistic dirt.")] = 0.02,
    start: Annotated[str, typer.Option("--start", help="First sale date (YYYY-MM-DD).")] = "2024-01-01",
) -> None:
    """Generate realistic sales lines and a product master, with dirt at a chosen rate."""
    from rich.progress import Progress

    from retail_etl.sample.dirt import MAX_DIRTY_SHARE
    from retail_etl.sample.generator import generate

    if not 0 <= dirty_rate <= MAX_DIRTY_SHARE:
        raise typer.BadParameter(f"must be between 0 and {MAX_DIRTY_SHARE:.3f}", param_hint="--dirty-rate")
    start_date = _day(start, "--start")
    with Progress(console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("generating", total=rows)
        data = generate(
            out, rows, days, seed=seed, dirty_rate=dirty_rate, start_date=start_date,
            progress=lambda n: bar.update(task, completed=n),
        )
    dirt = sum(vars(data.dirt).values())
    console.print(Text(
        f"Wrote {data.rows:,} sales lines to {data.sales_path} ({dirt:,} dirty) "
        f"and {data.products:,} products to {data.products_path}"
    ))


@app.command()
def ingest(
    source: Annotated[str, typer.Argument(help="Source name declared in retail-etl.yaml.")],
    files: Annotated[list[Path], typer.Argument(help="Files to copy into the raw zone.")],
    follow_symlinks: Annotated[bool, typer.Option(
        "--follow-symlinks", help="Ingest what a symbolic link points to (refused otherwise)."
    )] = False,
    replace: Annotated[bool, typer.Option(
        "--replace", help="The files replace the rows of the earlier deliveries of their names (corrections); "
        "by default a file adds a delivery, unless the source declares `deliveries: replace`."
    )] = False,
    config: ConfigOption = None,
) -> None:
    """Copy files into the raw zone unchanged (checksummed, by source and ingest date, read-only):
    each new content is a delivery; content already ingested for the source is skipped."""
    from retail_etl.lake.lake import Lake

    cfg = _config(config)
    declared = cfg.source(source)
    lake = Lake(cfg)
    with lake.lock():
        added = lake.raw.ingest(source, files, follow_symlinks=follow_symlinks or declared.follow_symlinks,
                                replace=replace or declared.deliveries == "replace")
    for f in added:  # file names are shown as they are, never read as Rich markup
        replaces = ", replaces its earlier deliveries" if f.replace else ""
        console.print(f"ingested {f.name} -> {f.path} (delivery {f.delivery_id}, sha256 {f.sha256[:12]}…, "
                      f"{f.size:,} bytes{replaces})", markup=False, highlight=False, soft_wrap=True)
    skipped = len(files) - len(added)
    if skipped:
        console.print(f"{skipped} file(s) already ingested with the same content: skipped")


BookmarkOption = Annotated[
    Optional[str],  # noqa: UP007 - typer needs Optional
    typer.Option("--bookmark", help="enable (default): process new files and remember them; pause: process "
                      "new files, remember nothing; disable: re-derive every raw file.")
]
LogFormatOption = Annotated[str, typer.Option("--log-format", help="Execution events on stderr as text or json.")]
SummaryFormatOption = Annotated[
    str, typer.Option("--format", "-f", help="The run summary as table, csv (one row per source, step and mart) "
                      "or json (the typed results of the steps).")
]
EngineOption = Annotated[
    Optional[str],  # noqa: UP007 - typer needs Optional
    typer.Option("--engine", help="Run on duckdb or spark (default: engine.name in the configuration)."),
]


@app.command()
def run(
    date: Annotated[Optional[str], typer.Option(  # noqa: UP007
        "--date", help="Business date: re-derive sale date D (YYYY-MM-DD) from all validated lines, after "
        "validating what is new.")] = None,
    ingest_date: Annotated[Optional[str], typer.Option(  # noqa: UP007
        "--ingest-date", help="Only raw files ingested on this day (YYYY-MM-DD).")] = None,
    input: Annotated[Optional[str], typer.Option(  # noqa: UP007
        "--input", help='The execution input as JSON, as Step Functions passes it: {"date": "2024-01-15"}, with '
        "the keys date, ingest_date and bookmarks; not combined with --date, --ingest-date or --bookmark.")] = None,
    resume: Annotated[Optional[str], typer.Option("--resume", help="Continue a failed execution from its failed step.")] = None,  # noqa: UP007
    bookmark: BookmarkOption = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for another run holding the lake instead of failing.")] = False,
    log_format: LogFormatOption = "text",
    format: SummaryFormatOption = "table",
    engine: EngineOption = None,
    config: ConfigOption = None,
) -> None:
    """Ingest new files matching the sources' globs, then validate, transform and aggregate them."""
    from retail_etl.errors import InputError
    from retail_etl.pipeline.results import RunInputs

    fmt = _choice(format, "--format", RUN_FORMATS)
    if input is not None:
        given = [o for o, v in (("--date", date), ("--ingest-date", ingest_date), ("--bookmark", bookmark)) if v]
        if given:
            raise typer.BadParameter(f"give the input either as JSON or as {', '.join(given)}, not both",
                                     param_hint="--input")
        try:
            inputs = RunInputs.from_json(input)
        except InputError as exc:
            raise typer.BadParameter(exc.message + (f" ({exc.hint})" if exc.hint else ""), param_hint="--input") \
                from None
    else:
        inputs = RunInputs(ingest_date=_day(ingest_date, "--ingest-date"),
                           bookmarks=_choice(bookmark or "enable", "--bookmark", BOOKMARK_MODES),
                           date=_day(date, "--date"))
    cfg = _with_engine(_config(config), engine)
    options = {"inputs": inputs, "resume": resume, "wait": wait,
               "log_format": _choice(log_format, "--log-format", LOG_FORMATS)}
    print_run(console, _run_with_progress(cfg, **options), fmt)


def _run_with_progress(cfg, **options):
    """On a terminal, a live status line per step (the events still go to the lake's log);
    elsewhere, or with --log-format json, the execution's events as lines on stderr."""
    from retail_etl.pipeline import run as run_pipeline

    if err.is_terminal and options["log_format"] == "text":
        with err.status("starting", spinner="dots") as status:
            return run_pipeline(cfg, progress=lambda msg: status.update(msg), **options)
    return run_pipeline(cfg, log_stream=sys.stderr, **options)


@app.command()
def backfill(
    start: Annotated[str, typer.Option(
        "--start", help="First date (YYYY-MM-DD): an ingest date, or a sale date with --by sale-date.")],
    end: Annotated[str, typer.Option("--end", help="Last date, inclusive.")],
    by: Annotated[str, typer.Option("--by", help="ingest-date (default): re-derive the raw files ingested on each "
                                    "day; sale-date: re-derive each sale date, as `run --date` does.")] = "ingest-date",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be re-derived; change nothing.")] = False,
    log_format: LogFormatOption = "text",
    format: SummaryFormatOption = "table",
    engine: EngineOption = None,
    config: ConfigOption = None,
) -> None:
    """Re-derive a range of dates, one execution per date, in order.

    By ingest date (the default): every raw file ingested on each day of the range (the raw zone's
    ingest_date folders), re-validated without bookmarks. By sale date: each sale date of the
    range, re-derived from all validated lines after validating what is new, as ``run --date``.

    With ``--format csv`` or ``json`` only the summaries are printed (csv: one header, json: one
    object per line, one line per execution)."""
    from retail_etl.lake.lake import Lake
    from retail_etl.pipeline.results import RunInputs

    fmt = _choice(format, "--format", RUN_FORMATS)
    kind = _choice(by, "--by", ("ingest-date", "sale-date"))
    cfg = _with_engine(_config(config), engine)
    first, last = _day(start, "--start"), _day(end, "--end")
    if first > last:
        raise typer.BadParameter("must not be after --end", param_hint="--start")
    days: dict[str, list[str]] = {}
    if kind == "sale-date":
        days = {(first + dt.timedelta(days=n)).isoformat(): [] for n in range((last - first).days + 1)}
    else:
        lake = Lake(cfg)
        for name in cfg.sources:
            for f in lake.raw.manifest(name):
                if first.isoformat() <= f.ingest_date <= last.isoformat():
                    days.setdefault(f.ingest_date, []).append(f"{name}/{f.name}")
    if not days:
        if fmt == "table":
            console.print(f"no raw files were ingested between {first} and {last}")
        return
    for i, day in enumerate(sorted(days)):
        if fmt == "table" or dry_run:
            listed = f": {', '.join(sorted(set(days[day])))}" if days[day] else ": sale date"
            console.print(f"{day}{listed}", markup=False, highlight=False)
        if not dry_run:
            date = dt.date.fromisoformat(day)
            inputs = RunInputs(date=date) if kind == "sale-date" else RunInputs(ingest_date=date, bookmarks="disable")
            result = _run_with_progress(cfg, inputs=inputs, resume=None, wait=False,
                                        log_format=_choice(log_format, "--log-format", LOG_FORMATS))
            print_run(console, result, fmt, header=fmt != "csv" or i == 0)


BOOKMARK_MODES = ("enable", "pause", "disable")
LOG_FORMATS = ("text", "json")
ENGINES = ("duckdb", "spark")


def _with_engine(cfg, engine: str | None):
    """``cfg`` with the engine named by ``--engine`` (its other engine settings kept)."""
    if engine is None:
        return cfg
    name = _choice(engine, "--engine", ENGINES)
    return cfg.model_copy(update={"engine": cfg.engine.model_copy(update={"name": name})})


def _choice(value: str, option: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise typer.BadParameter(f"choose {', '.join(allowed)}", param_hint=option)
    return value


def _day(value: str | None, option: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter("expected YYYY-MM-DD", param_hint=option) from None


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="A SELECT over retail_etl.<table>.")],
    format: Annotated[str, typer.Option("--format", "-f", help="table, csv or json.")] = "table",
    dialect: Annotated[str, typer.Option("--dialect", help="duckdb, athena, trino or spark.")] = "duckdb",
    config: ConfigOption = None,
) -> None:
    """Run read-only SQL over the current snapshots of the catalog tables."""
    from retail_etl.query import run_query

    if format not in ("table", "csv", "json"):
        raise typer.BadParameter("choose table, csv or json", param_hint="--format")
    if dialect not in ("duckdb", "athena", "trino", "spark"):
        raise typer.BadParameter("choose duckdb, athena, trino or spark", param_hint="--dialect")
    result = run_query(_config(config), sql, dialect)  # type: ignore[arg-type]
    print_table(console, result, format)


def main() -> None:
    """Console-script entry point and the error boundary: every anticipated failure becomes one line
    naming what failed and where, plus a hint, and its exit code; anything else one line asking for
    ``--debug``. No traceback reaches the user without ``--debug``."""
    debug = "--debug" in sys.argv[1:]
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        code = EXIT_INTERRUPTED
    except NoArgsIsHelpError as exc:
        exc.show()
        code = exc.exit_code
    except ClickException as exc:
        command = exc.ctx.command_path if isinstance(exc, UsageError) and exc.ctx else "retail-etl"
        _error(exc.format_message(), f"see `{command} --help`")
        code = exc.exit_code
    except Exception as exc:  # noqa: BLE001 - the boundary: nothing escapes as a traceback
        if debug or _State.debug:
            raise
        code = _report(exc)
    if code == EXIT_INTERRUPTED:  # Typer turns Ctrl-C into this exit code, silently
        _error("interrupted", "the lake is left as it was at its last commit; run again to continue")
    sys.exit(code or 0)


def _report(exc: Exception) -> int:
    """Print ``exc`` as the user should see it; returns the exit code."""
    from retail_etl.errors import translate

    known = translate(exc)
    if known is None:
        _error(f"unexpected error: {type(exc).__name__}: {exc}; rerun with --debug for the traceback", None)
        return EXIT_ERROR
    step = known.step
    where = f"step {step}: " if step and f"(step {step})" not in known.message else ""
    _error(where + known.message, known.hint)
    if isinstance(known, QualityGateError):
        return EXIT_QUALITY
    if isinstance(known, CircuitOpenError):
        return EXIT_CIRCUIT_OPEN
    return EXIT_TEMPFAIL if known.transient else EXIT_ERROR


def _error(message: str, hint: str | None) -> None:
    """``error: …`` and ``  hint: …`` on stderr, shown verbatim: no markup, control characters
    escaped, credentials in URLs masked."""
    from retail_etl.redact import escape_control, mask_secrets

    def shown(text: str) -> str:
        return escape_control(mask_secrets(text))

    lines = message.splitlines() or [""]
    text = Text("error: ", style="bold red")
    text.append(shown(lines[0]))
    for line in lines[1:]:
        text.append("\n" + shown(line))
    err.print(text, highlight=False, soft_wrap=True)
    if hint:
        err.print(Text(f"  hint: {shown(hint)}"), highlight=False, soft_wrap=True)
