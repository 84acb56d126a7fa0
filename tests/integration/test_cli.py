"""The command line as a user runs it: real processes, exit codes, output."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest


def cli(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "retail_etl", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def count(project: Path, table: str, where: str = "") -> int:
    out = cli("query", "--format", "csv", f"select count(*) from retail_etl.{table} {where}", cwd=project).stdout
    rows = list(csv.reader(io.StringIO(out)))
    return int(rows[1][0])


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("cli")
    cli("init", "demo", cwd=base)
    project = base / "demo"
    cli("run", cwd=project)
    return project


def test_init_then_run_conserves_the_sample(project: Path) -> None:
    sales = project / "data" / "sales.csv"
    lines = sum(1 for ln in sales.read_bytes().split(b"\n")[1:] if ln.strip())
    assert 9_000 <= lines <= 11_000
    early = count(project, "sales_quarantine", "where stage <> 'transform'")
    assert count(project, "sales_validated") + early == lines


def test_quarantine_rows_name_file_line_and_rule(project: Path) -> None:
    out = cli("query", "--format", "json", "select source_file, source_line, failed_rules from "
              "retail_etl.sales_quarantine", cwd=project).stdout
    rows = json.loads(out)
    assert rows and all(r["source_file"] == "sales.csv" and r["source_line"] > 1 and r["failed_rules"] for r in rows)


def test_shipped_sample_figures_match_the_oracle(project: Path) -> None:
    import datetime as dt
    from decimal import Decimal

    from tests.integration import oracle

    products = oracle.load_products(project / "data" / "products.csv")
    lines, _ = oracle.sales_lines([project / "data" / "sales.csv"], products, dt.date.today())
    expected = oracle.daily(lines)
    out = json.loads(cli("query", "--format", "json", "select * from retail_etl.daily_sales", cwd=project).stdout)
    actual = {dt.date.fromisoformat(r["sale_date"]): r for r in out}
    assert set(actual) == set(expected)
    for day, row in expected.items():
        for column, value in row.items():
            got = actual[day][column]
            assert (Decimal(got) if isinstance(value, Decimal) else got) == value, (day, column)


def test_second_run_is_a_no_op(project: Path) -> None:
    before = cli("catalog", "list", cwd=project).stdout
    out = cli("run", cwd=project).stdout
    assert "nothing to do" in out
    assert cli("catalog", "list", cwd=project).stdout == before


def test_catalog_show(project: Path) -> None:
    out = cli("catalog", "show", "retail_etl.sales_enriched", cwd=project).stdout
    assert "sale_date (identity)" in out and "net_amount" in out and "append" in out


def test_query_dialects_and_read_only(project: Path) -> None:
    athena = cli("query", "--dialect", "athena", "--format", "csv",
                 'SELECT date_format(sale_date, \'%Y-%m\') AS m, count(*) AS n FROM "retail_etl"."daily_sales" GROUP BY 1',
                 cwd=project).stdout
    assert athena.splitlines()[1].startswith("2024-01,")
    refused = cli("query", "delete from retail_etl.sales_validated", cwd=project, check=False)
    assert refused.returncode == 1 and "only read-only queries" in refused.stderr


def test_errors_are_one_line_with_exit_codes(tmp_path: Path) -> None:
    missing = cli("run", cwd=tmp_path, check=False)
    assert missing.returncode == 1
    assert "no retail-etl.yaml found" in missing.stderr and "Traceback" not in missing.stderr
    (tmp_path / "retail-etl.yaml").write_text("sources: {sales: {entity: sales, path: x, colums: {}}}\n")
    bad = cli("run", cwd=tmp_path, check=False)
    assert bad.returncode == 1 and "retail-etl.yaml:1: sources.sales.colums" in bad.stderr
    usage = cli("query", "select 1", "--format", "xml", cwd=tmp_path, check=False)
    assert usage.returncode == 2


@pytest.mark.parametrize("command", [[], ["init"], ["run"], ["ingest"], ["query"], ["sample-data"], ["backfill"],
                                     ["catalog"], ["catalog", "list"], ["catalog", "show"], ["runs"],
                                     ["runs", "list"], ["runs", "show"], ["logs"], ["circuit"], ["circuit", "status"],
                                     ["circuit", "reset"], ["bookmarks"], ["bookmarks", "show"],
                                     ["bookmarks", "reset"], ["bookmarks", "set"]])
def test_help_everywhere(command: list[str], tmp_path: Path) -> None:
    out = cli(*command, "--help", cwd=tmp_path).stdout
    assert "Usage" in out


def test_sample_data_command(tmp_path: Path) -> None:
    out = cli("sample-data", "--rows", "2000", "--days", "5", "--out", "gen", "--seed", "3", cwd=tmp_path).stdout
    assert "2,000 sales lines" in out
    assert (tmp_path / "gen" / "products.csv").exists()


def test_ingest_keeps_raw_files_unchanged_and_checksummed(project: Path, tmp_path: Path) -> None:
    import hashlib

    extra = tmp_path / "sales_extra.csv"
    lines = (project / "data" / "sales.csv").read_bytes().split(b"\n")
    extra.write_bytes(b"\n".join([lines[0], *(ln.replace(b"R", b"Z", 1) for ln in lines[1:21])]) + b"\n")
    out = cli("ingest", "sales", str(extra), cwd=project).stdout
    assert "ingested sales_extra.csv" in out
    again = cli("ingest", "sales", str(extra), cwd=project).stdout
    assert "already ingested" in again
    manifest = [json.loads(ln) for ln in (project / "lake" / "raw" / "sales" / "_manifest.jsonl").read_text().splitlines()]
    entry = [m for m in manifest if m["name"] == "sales_extra.csv"]
    assert len(entry) == 1
    raw = project / "lake" / entry[0]["path"]
    assert raw.read_bytes() == extra.read_bytes()
    assert hashlib.sha256(raw.read_bytes()).hexdigest() == entry[0]["sha256"]
    assert "ingest_date=" in entry[0]["path"]
    before = count(project, "sales_validated")
    cli("run", cwd=project)
    after = count(project, "sales_validated", "where source_file = 'sales_extra.csv'")
    assert count(project, "sales_validated") == before + after and after > 0



def inproc(*args: str) -> str:
    """The command run in this process (the output is not a terminal, as when piped)."""
    from typer.testing import CliRunner

    from retail_etl.cli.main import app

    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "80"})
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_query_output_is_verbatim(project: Path) -> None:
    sql = ("select '[bold red]x[/] :thumbs_up:' as \"[b]h\", NULL as n, '' as e, "
           "'a' || chr(27) || ']0;pwned' || chr(7) || 'b' as esc, 1.50::decimal(4, 2) as d")
    table = inproc("query", sql, "-c", str(project))
    assert "[bold red]x[/] :thumbs_up:" in table and "[b]h" in table and "👍" not in table
    assert "a\\x1b]0;pwned\\x07b" in table and "\x1b" not in table and "∅" in table
    assert inproc("query", "--format", "csv", sql, "-c", str(project)).splitlines() == [
        "[b]h,n,e,esc,d", "[bold red]x[/] :thumbs_up:,,\"\",a\x1b]0;pwned\x07b,1.50"]  # piped: bytes as they are
    assert json.loads(inproc("query", "--format", "json", sql, "-c", str(project))) == [
        {"[b]h": "[bold red]x[/] :thumbs_up:", "n": None, "e": "", "esc": "a\x1b]0;pwned\x07b", "d": "1.50"}]


def test_catalog_formats_and_whole_snapshot_ids(project: Path) -> None:
    tables = json.loads(inproc("catalog", "list", "--format", "json", "-c", str(project)))
    by_name = {t["table"]: t for t in tables}
    assert list(tables[0]) == ["table", "zone", "rows", "files", "snapshots"]
    assert by_name["retail_etl.daily_sales"]["rows"] == count(project, "daily_sales")
    listed = list(csv.DictReader(io.StringIO(inproc("catalog", "list", "--format", "csv", "-c", str(project)))))
    assert {r["table"] for r in listed} == set(by_name)
    doc = json.loads(inproc("catalog", "show", "sales_enriched", "--format", "json", "-c", str(project)))
    assert doc["partitioned_by"] == [{"column": "sale_date", "transform": "identity"}]
    assert {"column": "net_amount", "type": "decimal(18, 2)"}.items() <= next(
        c for c in doc["schema"] if c["column"] == "net_amount").items()
    snapshot_ids = [str(s["snapshot_id"]) for s in doc["snapshots"]]
    assert snapshot_ids and all(len(i) >= 15 for i in snapshot_ids)
    shown = inproc("catalog", "show", "sales_enriched", "-c", str(project))
    assert all(i in shown for i in snapshot_ids) and "…" not in shown  # piped: nothing cut at 80 columns
    snaps = list(csv.DictReader(io.StringIO(inproc("catalog", "show", "sales_enriched", "--format", "csv",
                                                   "-c", str(project)))))
    assert [s["snapshot_id"] for s in snaps] == snapshot_ids and snaps[-1]["total_rows"] == str(doc["rows"])


def test_bookmarks_formats(project: Path) -> None:
    rows = json.loads(inproc("bookmarks", "show", "sales", "--format", "json", "-c", str(project)))
    assert rows and all(r["source"] == "sales" and len(r["sha256"]) == 64 for r in rows)
    assert {r["state"] for r in rows} == {"processed"} and all(r["run_id"].startswith("exec-") for r in rows)
    listed = list(csv.DictReader(io.StringIO(inproc("bookmarks", "show", "--format", "csv", "-c", str(project)))))
    assert {r["source"] for r in listed} == {"sales", "products"} and all(len(r["sha256"]) == 64 for r in listed)


def test_version(tmp_path: Path) -> None:
    from importlib.metadata import version

    out = cli("--version", cwd=tmp_path).stdout
    assert out == f"retail-etl {version('retail-etl')}\n"


@pytest.mark.parametrize("command", [[], ["query"], ["runs", "list"], ["catalog", "show"], ["bookmarks", "show"]])
def test_help_imports_no_heavy_library(command: list[str], tmp_path: Path) -> None:
    """`--help` stays fast because the data libraries load only when a command runs; checked by
    module, not by the clock. (Typer itself loads pydantic to describe a subcommand's options.)"""
    script = ("import sys\nsys.argv = ['retail-etl', *sys.argv[1:], '--help']\nfrom retail_etl.cli.main import app\n"
              "try:\n    app()\nexcept SystemExit:\n    pass\n"
              "heavy = ['pyiceberg', 'duckdb', 'pyarrow', 'sqlglot', 'numpy', 'sqlalchemy', 'yaml', 'boto3', 'pandas',"
              " 'pydantic']\nprint('LOADED', [m for m in heavy if m in sys.modules])\n")
    proc = subprocess.run([sys.executable, "-c", script, *command], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    loaded = proc.stdout.splitlines()[-1]
    assert "Usage" in proc.stdout and loaded.startswith("LOADED "), proc.stdout + proc.stderr
    allowed = [] if not command else ["pydantic"]
    assert [m for m in json.loads(loaded.removeprefix("LOADED ").replace("'", '"')) if m not in allowed] == []
