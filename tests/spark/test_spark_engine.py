"""The pipeline on Spark gives what it gives on DuckDB: golden cases, generated dirty data, CSV reading.

All in one module, so that ``pytest -n`` runs them in one worker with one SparkSession.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from retail_etl.config.loader import load_config
from retail_etl.config.model import CsvOptions, EngineConfig
from retail_etl.engines.base import EMPTY_REJECTS
from retail_etl.engines.duckdb import DuckDBEngine
from retail_etl.pipeline import Lake, run
from retail_etl.sample.generator import generate
from retail_etl.sources import csv_reader
from tests.conftest import SCAFFOLD
from tests.golden.test_golden import CASES, run_and_compare

pytest.importorskip("pyspark", reason="the spark extra is not installed")
pytestmark = pytest.mark.spark

# Columns that differ between any two runs.
VOLATILE = {"run_id", "quarantined_at", "measured_at", "seconds"}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_case_on_spark(case: Path, tmp_path: Path, spark_engine: EngineConfig) -> None:
    run_and_compare(case, tmp_path, spark_engine)


def test_precise_money_case_gives_the_same_tables_on_both_engines(tmp_path: Path, spark_engine: EngineConfig) -> None:
    """Four-place amounts, a rate on the paid amount (a quotient), NULL costs, declared attributes."""
    (case,) = (c for c in CASES if c.name == "superstore")
    catalogs = {}
    for name, engine in (("duckdb", EngineConfig()), ("spark", spark_engine)):
        project = tmp_path / name
        shutil.copytree(case, project, ignore=shutil.ignore_patterns("expected"))
        config = load_config(project / "retail-etl.yaml", env={}).model_copy(update={"engine": engine})
        run(config)
        catalogs[name] = Lake(config).catalog
    _assert_same_tables(catalogs["duckdb"], catalogs["spark"], required=("sales_enriched", "daily_sales"))


def test_generated_dirty_data_gives_the_same_tables_on_both_engines(tmp_path: Path, spark_engine: EngineConfig) -> None:
    generate(tmp_path / "data", rows=3000, dirty_rate=0.05)
    catalogs = {}
    for name, engine in (("duckdb", EngineConfig()), ("spark", spark_engine)):
        project = tmp_path / name
        shutil.copytree(tmp_path / "data", project / "data")
        shutil.copyfile(SCAFFOLD, project / "retail-etl.yaml")
        config = load_config(project / "retail-etl.yaml", env={}).model_copy(update={"engine": engine})
        run(config)
        catalogs[name] = Lake(config).catalog
    _assert_same_tables(catalogs["duckdb"], catalogs["spark"])


def test_a_master_with_repeated_ids_gives_the_same_tables_on_both_engines(
    tmp_path: Path, spark_engine: EngineConfig
) -> None:
    generate(tmp_path / "data", rows=1500, dirty_rate=0.05)
    master = tmp_path / "data" / "products.csv"
    lines = master.read_text(encoding="utf-8").splitlines()
    repeats = [line.replace(",", " (again),", 2).replace(" (again)", "", 1) for line in lines[1:40:3]]
    master.write_text("\n".join([*lines, *repeats]) + "\n", encoding="utf-8")
    text = SCAFFOLD.read_text().replace('      - rule: IsUnique "product_id"\n', "", 1)
    text = text.replace("    key_wins: first ", "    key_wins: latest ", 1)
    catalogs = {}
    for name, engine in (("duckdb", EngineConfig()), ("spark", spark_engine)):
        project = tmp_path / name
        shutil.copytree(tmp_path / "data", project / "data")
        (project / "retail-etl.yaml").write_text(text)
        config = load_config(project / "retail-etl.yaml", env={}).model_copy(update={"engine": engine})
        run(config)
        catalogs[name] = Lake(config).catalog
    assert len(_rows(catalogs["duckdb"].load("products_quarantine"))) == len(repeats)
    _assert_same_tables(catalogs["duckdb"], catalogs["spark"])


def test_cli_engine_option_on_the_init_project(tmp_path: Path) -> None:
    """`retail-etl init` then `retail-etl run` and `retail-etl run --engine spark`: the same tables."""
    catalogs = {}
    for name, options in (("duckdb", []), ("spark", ["--engine", "spark"])):
        project = tmp_path / name
        _cli(tmp_path, "init", str(project), "--rows", "2000")
        config = project / "retail-etl.yaml"
        config.write_text(config.read_text().replace("engine:\n", "engine:\n" + SPARK_YAML, 1))
        _cli(project, "run", *options)
        catalogs[name] = Lake(load_config(project / "retail-etl.yaml", env={})).catalog
    _assert_same_tables(catalogs["duckdb"], catalogs["spark"])


# The tests' Spark settings (see conftest.py), as a user would write them.
SPARK_YAML = """  spark:
    master: local[2]
    conf:
      spark.sql.shuffle.partitions: 2
      spark.default.parallelism: 2
      spark.sql.codegen.wholeStage: false
      spark.sql.adaptive.enabled: false
      spark.driver.extraJavaOptions: -XX:TieredStopAtLevel=1 -XX:+UseSerialGC
"""


def _cli(cwd: Path, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "retail_etl", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr


def _assert_same_tables(duck, spark, required: tuple[str, ...] = (
        "sales_validated", "sales_quarantine", "sales_enriched", "daily_sales", "product_daily")) -> None:
    assert duck.tables() == spark.tables()
    for name in required:
        assert _rows(duck.load(name)), name
    for name in duck.tables():
        a, b = duck.load(name), spark.load(name)
        assert a is not None and b is not None
        assert _fields(a) == _fields(b), name
        assert a.spec() == b.spec(), name
        rows_a, rows_b = _rows(a), _rows(b)
        assert len(rows_a) == len(rows_b), name
        for ra, rb in zip(rows_a, rows_b, strict=True):
            assert _same(ra, rb), (name, ra, rb)


def _fields(table) -> list[tuple[str, str, bool]]:
    return [(f.name, str(f.field_type), f.required) for f in table.schema().fields]


def _rows(table) -> list[tuple]:
    names = [f.name for f in table.schema().fields if f.name not in VOLATILE]
    rows = table.scan(selected_fields=tuple(names)).to_arrow().to_pylist()
    return sorted((tuple(r[n] for n in names) for r in rows), key=_sort_key)


def _sort_key(row: tuple) -> tuple:
    return tuple((v is None, f"{v:.6g}" if isinstance(v, float) else v if v is not None else 0) for v in row)


def _same(a: tuple, b: tuple) -> bool:
    return all(
        math.isclose(x, y, rel_tol=1e-9) if isinstance(x, float) and isinstance(y, float) else x == y
        for x, y in zip(a, b, strict=True)
    )


# -- CSV reading: the Spark reader against the local one ----------------------------------------------

# name: (content, CsvOptions, size of the byte ranges)
CSV_FILES = {
    "dirty": (
        b"a,b,c\n1,2,3\n\n4,5\n6,7,8,9\n  \n\"x\",\"y\"\"z\",3\n1,2,\n\xff,2,3\n10,\"a\nb\",12\n"
        + b"".join(b"%d,%d,%d\n" % (i, i, i) for i in range(40))
        + b"7,\"open,8\n9,9,9\n5,6,7",
        {},
        150,
    ),
    "quoted_line_break_across_ranges": (
        b"a,b\n" + b"".join(b"%d,%d\n" % (i, i) for i in range(30)) + b"1,\"x\n2,y\"\n3,4\n", {}, 165),
    "crlf_bom_skip": (b"\xef\xbb\xbftitle\r\na;b\r\n1;2\r\n3;\"4;5\"\r\n\r\n6;7\r\n",
                      {"delimiter": ";", "skip_rows": 1}, 20),
    "cp1252_lone_cr": ("a,b\nKäse,1\nx\ry,2\n".encode("cp1252") + b"\x81,3\n", {"encoding": "cp1252"}, 12),
    "no_header": (b"1,2\n3,4\n5\n", {"header": False, "column_names": ["x", "y"]}, 1 << 20),
    "utf16": ("a,b\n1,2\n3\n".encode("utf-16"), {"encoding": "utf-16"}, 1 << 20),
    "empty": (b"", {}, 1 << 20),
}

# Files the Spark engine hands to the local reader: a record across ranges, UTF-16, no header.
LOCAL = {"quoted_line_break_across_ranges", "utf16", "empty"}


@pytest.mark.parametrize("case", sorted(CSV_FILES))
def test_spark_csv_reading_matches_the_local_reader(case: str, tmp_path: Path, spark_engine: EngineConfig) -> None:
    from retail_etl.engines.spark import SparkEngine

    data, options, split = CSV_FILES[case]
    path = tmp_path / "in.csv"
    path.write_bytes(data)
    opts = CsvOptions(**options)

    con = duckdb.connect()
    expected = csv_reader.load_csv(con, path, opts, table="t", rejects_table="r", source_file="in.csv")
    want_rows = sorted(con.execute("SELECT * FROM t").fetchall(), key=lambda r: r[1])
    want_rejects = sorted(con.execute("SELECT * FROM r").fetchall(), key=lambda r: r[1])

    engine = SparkEngine.start(spark_engine)
    engine.csv_split_bytes = split
    try:
        engine.table("r", EMPTY_REJECTS)
        got = engine.load_csv(path, opts, table="t", rejects_table="r", source_file="in.csv")
        got_rows = sorted(engine.fetch_rows("SELECT * FROM t"), key=lambda r: r[1])
        got_rejects = sorted(engine.fetch_rows("SELECT * FROM r"), key=lambda r: r[1])
    finally:
        engine.close()
    assert (got.reader == "spark") == (case not in LOCAL)
    assert (got.columns, got.rows, got.rejected, got.blank_lines) == (
        expected.columns, expected.rows, expected.rejected, expected.blank_lines)
    assert got_rows == want_rows
    assert got_rejects == want_rejects


def test_generated_file_is_read_by_the_executors(tmp_path: Path, spark_engine: EngineConfig) -> None:
    """Dirty generated data (a bad byte, wrong field counts, an unterminated quote) in many ranges."""
    from retail_etl.engines.spark import SparkEngine

    generated = generate(tmp_path, rows=3000, dirty_rate=0.05)
    opts = CsvOptions()
    con = duckdb.connect()
    expected = csv_reader.load_csv(con, generated.sales_path, opts, table="t", rejects_table="r", source_file="s")
    engine = SparkEngine.start(spark_engine)
    engine.csv_split_bytes = 100 << 10
    try:
        engine.table("r", EMPTY_REJECTS)
        got = engine.load_csv(generated.sales_path, opts, table="t", rejects_table="r", source_file="s")
        assert got.reader == "spark"
        assert sorted(engine.fetch_rows("SELECT * FROM t")) == sorted(con.execute("SELECT * FROM t").fetchall())
        assert sorted(engine.fetch_rows("SELECT * FROM r")) == sorted(con.execute("SELECT * FROM r").fetchall())
    finally:
        engine.close()
    assert (got.rows, got.rejected, got.blank_lines) == (expected.rows, expected.rejected, expected.blank_lines)
    assert expected.rejected > 0


# -- what engines/sql.py resolves, value by value ------------------------------------------------------

TEXTS = [
    "1", "1.5", "-2.5", "+3", ".5", "5.", "1e3", "1_000", "1__0", "_1", "12,99x", "N/A", "", "1.005", "-1.005",
    "99999999999999999999", "١٢", "2.4999999999999", "2024-01-01", "2024-1-1", "2024/01/01", "2024 01 01",
    "2024-02-30", "20240101", "2024-01-01 10:00:00", "2024-01-01T10:00", "2024-01-01 garbage", "+2024-01-01",
    "01.03.2024", "1.3.2024", "001.03.2024", "31.02.2024", "2024-05-01  10:00:00", "2024-5-1 1:2:3",
    "2024-05-01 10:00:00.5", "abc\n", "a$", "new\nline", "u\u2028x", "quo\"te", None,
]
EXPRESSIONS = [
    "TRY_CAST(x AS DECIMAL(18, 2))", "TRY_CAST(x AS INTEGER)", "TRY_CAST(x AS BIGINT)", "TRY_CAST(x AS DATE)",
    "TRY_CAST(x AS TIMESTAMP)", "CAST(TRY_STRPTIME(x, '%d.%m.%Y') AS DATE)", "TRY_STRPTIME(x, '%Y-%m-%d %H:%M:%S')",
    "TRY_STRPTIME(x, '%Y-%m-%dT%H:%M')", "TRY_STRPTIME(x, '%Y-%m-%d %H:%M:%S.%f')", "regexp_matches(x, '^(?:.*)$')",
    "regexp_matches(x, '^(?:[a-z$]+)$')", "CAST(json_object('x', x, 'n', NULL) AS VARCHAR)",
    "CAST(TRY_CAST(x AS DECIMAL(18, 2)) / 7 AS DECIMAL(18, 4))",
    "isoyear(DATE '2024-12-30') * 10 + isodow(DATE '2024-12-29')", "weekofyear(DATE '2021-01-03')",
]


def test_casts_and_parsing_agree(spark_engine: EngineConfig) -> None:
    from retail_etl.engines.spark import SparkEngine

    values = ", ".join(f"({i}, {'NULL' if t is None else _literal(t)})" for i, t in enumerate(TEXTS))
    engines = {"duckdb": DuckDBEngine(duckdb.connect()), "spark": SparkEngine.start(spark_engine)}
    try:
        results = {}
        for name, engine in engines.items():
            engine.table("t", f"SELECT * FROM (VALUES {values}) AS v(i, x)")
            select = ", ".join(f"{e} AS e{n}" for n, e in enumerate(EXPRESSIONS))
            results[name] = sorted(engine.fetch_rows(f"SELECT i, {select} FROM t"))
    finally:
        for engine in engines.values():
            engine.close()
    for duck, spark in zip(results["duckdb"], results["spark"], strict=True):
        for expression, a, b in zip(["i", *EXPRESSIONS], duck, spark, strict=True):
            assert a == b, (TEXTS[duck[0]], expression, a, b)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def test_odd_header_names_give_the_same_tables_on_both_engines(tmp_path: Path, spark_engine: EngineConfig) -> None:
    """Header names holding SQL, and a namespace Spark cannot take unquoted as a view name."""
    from tests.integration.test_header_names_props import ODD_NAMES, PLAIN, _project

    catalogs = {}
    for name, engine in (("duckdb", EngineConfig()), ("spark", spark_engine)):
        project = _project(tmp_path / name, dict(zip(PLAIN, ODD_NAMES, strict=True)))
        config = load_config(project / "retail-etl.yaml", env={}).model_copy(update={"engine": engine})
        config = config.model_copy(update={"lake": config.lake.model_copy(update={"namespace": "my-lake `x` it's"})})
        run(config)
        catalogs[name] = Lake(config).catalog
    _assert_same_tables(catalogs["duckdb"], catalogs["spark"])
