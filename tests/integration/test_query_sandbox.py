"""`query` reads the catalog's tables and nothing else: refused by the parser, and by DuckDB itself."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from retail_etl.cli.catalog import app as catalog_app
from retail_etl.config.loader import load_config
from retail_etl.errors import LakeError, QueryError
from retail_etl.lake.catalog import open_read_only
from retail_etl.lake.storage import open_storage
from retail_etl.query import register, run_query, sandbox, to_duckdb

FILE_FUNCTIONS = [
    "read_text('/etc/hostname')", "read_blob('/proc/self/environ')", "read_csv('/etc/passwd')",
    "read_csv_auto('/etc/passwd')", "read_json('/etc/hostname')", "read_json_auto('/etc/hostname')",
    "read_ndjson('/etc/hostname')", "read_json_objects('/etc/hostname')", "read_parquet('/x.parquet')",
    "parquet_scan('/x.parquet')", "parquet_metadata('/x.parquet')", "parquet_schema('/x.parquet')",
    "glob('/*')", "sniff_csv('/etc/passwd')", "query('select 1')", "query_table('x')",
    "sqlite_scan('/x.db', 't')", "iceberg_scan('/x')", "delta_scan('/x')",
]
STATEMENTS = [
    "PRAGMA version", "SET enable_external_access = true", "RESET enable_external_access",
    "ATTACH '/tmp/x.db'", "DETACH x", "INSTALL httpfs", "LOAD httpfs", "COPY retail_etl.daily_sales TO '/tmp/o.csv'",
    "EXPORT DATABASE '/tmp/x'", "CALL pragma_version()", "CREATE TABLE t AS SELECT 1", "INSERT INTO t VALUES (1)",
    "DELETE FROM retail_etl.daily_sales", "UPDATE retail_etl.daily_sales SET store_id = 'x'",
    "DROP TABLE retail_etl.daily_sales", "CHECKPOINT", "VACUUM", "USE retail_etl", "DESCRIBE retail_etl.daily_sales",
    "SHOW TABLES", "SUMMARIZE retail_etl.daily_sales", "EXPLAIN SELECT 1", "CREATE SECRET s (TYPE s3)",
    "SELECT 1; SELECT 2",
]
#: Ways to reach a file that a keyword list could miss: DuckDB refuses each one itself.
RAW = [
    "SELECT * FROM read_text('/etc/hostname')", 'SELECT * FROM "read_text"(\'/etc/hostname\')',
    "SELECT * FROM system.main.read_text('/etc/hostname')",
    "SELECT * FROM read_blob('/proc/self/environ')", "SELECT * FROM glob('/*')", "SELECT * FROM '/etc/passwd'",
    'SELECT * FROM "/etc/passwd"', "SELECT * FROM read_csv('/etc/passwd')", "SELECT * FROM sniff_csv('/etc/passwd')",
    "SELECT * FROM query('SELECT * FROM read_text(''/etc/hostname'')')", "ATTACH '/tmp/sandbox-x.db'",
    "COPY (SELECT 1) TO '/tmp/sandbox-o.csv'", "SET enable_external_access = true", "RESET enable_external_access",
    "SET allowed_paths = ['/']", "SET allowed_directories = ['/']", "SET lock_configuration = false",
    "LOAD httpfs", "INSTALL httpfs",
]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "retail_etl", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("sandbox")
    assert cli("init", "demo", "--rows", "300", cwd=base).returncode == 0
    assert cli("run", cwd=base / "demo").returncode == 0
    return base / "demo"


@pytest.mark.parametrize("call", FILE_FUNCTIONS)
def test_every_file_function_is_refused(call: str, project: Path) -> None:
    for sql in (f"SELECT * FROM {call}", f"SELECT 1 FROM retail_etl.daily_sales, {call}",
                f"WITH a AS (SELECT * FROM {call}) SELECT * FROM a"):
        with pytest.raises(QueryError, match="reads files") as info:
            run_query(load_config(project), sql)
        assert "catalog list" in (info.value.hint or "")


@pytest.mark.parametrize("sql", STATEMENTS)
def test_every_statement_but_a_query_is_refused(sql: str) -> None:
    with pytest.raises(QueryError) as info:
        to_duckdb(sql)
    assert info.value.hint
    assert any(w in info.value.message for w in ("only read-only queries", "one statement", "cannot parse"))


@pytest.mark.parametrize("name", ["/etc/passwd", "data.csv", "s3://bucket/key", "~/x", "C:\\x"])
def test_a_file_named_as_a_table_is_refused(name: str) -> None:
    with pytest.raises(QueryError, match="names a file"):
        to_duckdb(f"SELECT * FROM '{name}'")


@pytest.fixture(scope="module")
def sandboxed(project: Path) -> Iterator[tuple[duckdb.DuckDBPyConnection, list[str]]]:
    """A sandboxed connection over the project's tables, and the tables."""
    config = load_config(project)
    catalog = open_read_only(open_storage(config), config.lake.namespace)
    assert catalog is not None
    con = duckdb.connect(":memory:")
    names, files = register(con, catalog)
    sandbox(con, files)
    yield con, names
    con.close()


@pytest.mark.parametrize("sql", RAW)
def test_duckdb_itself_refuses_what_the_parser_might_miss(sql: str, sandboxed) -> None:
    """The sandboxed connection, given the raw SQL with no parser in front of it."""
    con, names = sandboxed
    with pytest.raises(duckdb.Error) as info:
        con.execute(sql).fetchall()
    assert any(w in str(info.value) for w in ("disabled", "locked", "does not exist")), str(info.value)
    assert con.execute("SELECT current_setting('enable_external_access')").fetchone() == (False,)
    total = con.execute("SELECT sum(lines) FROM retail_etl.daily_sales").fetchone()[0]
    assert "daily_sales" in names and total > 0  # the tables themselves stay readable
    assert not Path("/tmp/sandbox-o.csv").exists() and not Path("/tmp/sandbox-x.db").exists()


def test_cli_refusals_are_one_line(project: Path) -> None:
    for sql, why in [("select * from read_text('/etc/hostname')", "read_text() which reads files"),
                     ("select * from read_blob('/proc/self/environ')", "read_blob() which reads files"),
                     ("select 'x", "cannot read the query")]:
        proc = cli("query", sql, cwd=project)
        assert proc.returncode == 1, proc.stderr
        assert proc.stdout == "" and "Traceback" not in proc.stderr
        first, hint = proc.stderr.splitlines()
        assert first.startswith("error: ") and why.replace(" which", ", which") in first and "hint:" in hint
        assert "HOME=" not in proc.stderr and "PATH=" not in proc.stderr


def test_tables_are_read_as_before(project: Path) -> None:
    result = run_query(load_config(project), "SELECT count(*) AS n FROM retail_etl.daily_sales")
    assert result.column_names == ["n"] and result.column(0)[0].as_py() > 0


def test_query_on_a_project_that_never_ran_creates_nothing(scaffold_config: Path, tmp_path: Path) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(QueryError, match="no tables yet") as info:
        run_query(load_config(scaffold_config), "SELECT * FROM retail_etl.sales_validated")
    assert "retail-etl run" in (info.value.hint or "")
    assert run_query(load_config(scaffold_config), "SELECT 41 + 1 AS x").to_pylist() == [{"x": 42}]
    listing = CliRunner().invoke(catalog_app, ["list", "-c", str(scaffold_config)])
    assert listing.exit_code == 0 and "no tables yet" in listing.output
    shown = CliRunner().invoke(catalog_app, ["show", "sales", "-c", str(scaffold_config)])
    assert isinstance(shown.exception, LakeError) and "no table sales" in str(shown.exception)
    assert sorted(p.name for p in tmp_path.iterdir()) == before and not (tmp_path / "lake").exists()


def test_query_on_an_empty_s3_lake_uploads_nothing(scaffold_config: Path, s3_bucket: str, moto_endpoint: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    monkeypatch.setenv("RETAIL_ETL__LAKE__ROOT", f"s3://{s3_bucket}/lake")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    with pytest.raises(QueryError, match="no tables yet"):
        run_query(load_config(scaffold_config), "SELECT * FROM retail_etl.sales_validated")
    listing = boto3.client("s3", endpoint_url=moto_endpoint).list_objects_v2(Bucket=s3_bucket)
    assert listing.get("KeyCount", 0) == 0
