"""``retail-etl doctor``: is this machine ready to run this configuration?

Each check reports ok, warn or fail with one line of detail: the configuration (loaded with every
check of a run), the lake (a folder that can be written, or a bucket reachable with the credentials
found, which are named by their source and never shown), the extras and environment variables the
engine and the notification channels need, and Java for Spark. Nothing is written to the lake but a
probe file that is removed at once; nothing is sent to a channel.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

OK, WARN, FAIL = "ok", "warn", "fail"
LOW_SPACE = 1024**3  # warn below this much free space under a local lake
STYLE = {OK: "green", WARN: "yellow", FAIL: "bold red"}


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str


def run_checks(config_path: Path | None, env: os._Environ[str] | dict[str, str] | None = None) -> list[Check]:
    """Every check, in order; after a configuration that does not load, only that failure."""
    from retail_etl.config.loader import config_file, load_config
    from retail_etl.errors import RetailEtlError

    env = os.environ if env is None else env
    try:
        file = config_file(config_path)
        config = load_config(file, env=env)
    except RetailEtlError as exc:
        detail = exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
        return [Check("configuration", FAIL, detail)]
    checks = [Check("configuration", OK, f"{file}: {len(config.sources)} "
                    f"source(s), engine {config.engine.name}")]
    checks += lake_checks(config, env)
    checks += engine_checks(config)
    checks += channel_checks(config, env)
    return checks


# -- the lake -------------------------------------------------------------------------------------


def lake_checks(config, env) -> list[Check]:
    root = config.lake_root()
    if root.startswith("s3://"):
        return [_s3_check(config, env)]
    return _local_checks(Path(root))


def _local_checks(root: Path) -> list[Check]:
    from retail_etl.errors import from_os_error

    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return [Check("lake", FAIL, f"{root}: {existing} is a file, not a folder "
                      "(hint: point lake.root at a folder)")]
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".doctor-"):
            pass
    except OSError as exc:
        error = from_os_error(exc, action="write in", path=existing)
        return [Check("lake", FAIL, f"{error.message} (hint: {error.hint})")]
    where = f"{root} is writable" if existing == root else f"{root} can be created (in {existing})"
    checks = [Check("lake", OK, where)]
    free = shutil.disk_usage(existing).free
    status = WARN if free < LOW_SPACE else OK
    checks.append(Check("disk space", status, f"{free / 1024**3:.1f} GiB free under {existing}"))
    return checks


def _s3_check(config, env) -> Check:
    from retail_etl.errors import from_aws_error

    if importlib.util.find_spec("boto3") is None:
        return Check("lake", FAIL, "an s3:// lake needs boto3 (hint: pip install 'retail-etl[aws]')")
    import boto3

    bucket = config.lake_root().removeprefix("s3://").split("/", 1)[0]
    session = boto3.session.Session(region_name=config.lake.s3.region)
    credentials = session.get_credentials()
    if credentials is None:
        return Check("lake", FAIL, f"s3://{bucket}: no AWS credentials found (hint: set AWS_ACCESS_KEY_ID and "
                     "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws/credentials or an instance role)")
    client = session.client("s3", endpoint_url=config.lake.s3.endpoint_url)
    try:
        client.head_bucket(Bucket=bucket)
    except Exception as exc:  # noqa: BLE001 - every failure is a finding
        known = from_aws_error(exc, f"reach s3://{bucket}")
        detail = f"{known.message} (hint: {known.hint})" if known else f"cannot reach s3://{bucket}: {exc}"
        return Check("lake", FAIL, detail)
    return Check("lake", OK, f"s3://{bucket} is reachable with credentials from {credentials.method}")


# -- the engine -------------------------------------------------------------------------------------


def engine_checks(config) -> list[Check]:
    name = config.engine.name
    if name == "duckdb":
        return [Check("engine", OK, f"duckdb {_version('duckdb')}, memory_limit {config.engine.memory_limit}")]
    checks = [
        Check("engine", OK, f"pyspark {_version('pyspark')}") if importlib.util.find_spec("pyspark")
        else Check("engine", FAIL, "engine spark needs pyspark (hint: pip install 'retail-etl[spark]')")
    ]
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if java and Path(java).exists():
        checks.append(Check("java", OK, java))
    elif config.engine.spark.master.startswith("local"):
        checks.append(Check("java", FAIL, "Spark needs Java 17 or later on this machine (hint: install a JDK "
                            "and put java on PATH, or set JAVA_HOME)"))
    else:
        checks.append(Check("java", WARN, f"no java here; the driver of {config.engine.spark.master} needs one"))
    return checks


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "(version unknown)"


# -- notification channels ------------------------------------------------------------------------


def channel_checks(config, env) -> list[Check]:
    checks = []
    for index, channel in enumerate(config.notifications.channels):
        kind = channel.type
        name = f"channel {index + 1} ({kind})"
        spec = getattr(channel, kind)
        needed = []
        if kind == "webhook":
            needed = [v for v in (spec.url_env, *spec.headers_env.values()) if v]
        elif kind == "email":
            needed = [v for v in (spec.username_env, spec.password_env) if v]
        missing = [v for v in needed if not env.get(v)]
        if kind == "sns":
            checks.append(_sns_check(name))
        elif missing:
            checks.append(Check(name, FAIL, f"environment variable(s) not set: {', '.join(missing)} "
                                f"(hint: export {missing[0]}=...)"))
        else:
            checks.append(Check(name, OK, f"{len(needed)} environment variable(s) set" if needed else "ready"))
    return checks


def _sns_check(name: str) -> Check:
    if importlib.util.find_spec("boto3") is None:
        return Check(name, FAIL, "the sns channel needs boto3 (hint: pip install 'retail-etl[aws]')")
    import boto3

    credentials = boto3.session.Session().get_credentials()
    if credentials is None:
        return Check(name, FAIL, "no AWS credentials found for SNS (hint: set AWS_ACCESS_KEY_ID and "
                     "AWS_SECRET_ACCESS_KEY, AWS_PROFILE or an instance role)")
    return Check(name, OK, f"boto3 {_version('boto3')}, credentials from {credentials.method}")


# -- the command ---------------------------------------------------------------------------------------


def print_checks(console: Console, checks: list[Check], fmt: str) -> None:
    """As a table (status, check, detail) or as one JSON array of objects."""
    if fmt == "json":
        console.file.write(json.dumps([asdict(c) for c in checks], ensure_ascii=False) + "\n")
        return
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for column in ("status", "check", "detail"):
        table.add_column(column, overflow="fold")
    from retail_etl.redact import escape_control

    for c in checks:
        table.add_row(Text(c.status, style=STYLE[c.status]), Text(c.name), Text(escape_control(c.detail)))
    console.print(table)


def doctor_command(
    config: Annotated[
        Optional[Path],  # noqa: UP007 - typer needs Optional
        typer.Option("--config", "-c", help="Path to retail-etl.yaml (default: found from the current folder up)."),
    ] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table or json.")] = "table",
) -> None:
    """Check the configuration, the lake, the extras and the environment a run needs; exit 1 if any fails."""
    if format not in ("table", "json"):
        raise typer.BadParameter("choose table or json", param_hint="--format")
    from retail_etl.cli.output import stdout_console

    checks = run_checks(config)
    print_checks(stdout_console(), checks, format)
    if any(c.status == FAIL for c in checks):
        raise typer.Exit(1)
