"""Deliveries, not file names: a re-delivered name accumulates by default, replaces when declared
(or asked with ``ingest --replace``), and each replacement is reported; the key's winner is the
first or the latest delivery's line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from retail_etl.config.loader import load_config
from retail_etl.pipeline import Lake, RunResult, run
from retail_etl.query import run_query
from retail_etl.scaffold import create_project

HEADER = "receipt_id,line_no,sold_at,store,sku,customer_id,qty,unit_price,discount,currency,channel,payment_method"
REPLACE = {"RETAIL_ETL__SOURCES__SALES__DELIVERIES": "replace"}


def line(receipt: str, no: int, day: int, qty: int = 1) -> str:
    return f"{receipt},{no},2024-01-{day:02d} 10:00:00,S001,P00001,,{qty},2.00,0.00,EUR,store,card"


def body(*lines: str) -> str:
    return "\n".join([HEADER, *lines]) + "\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The scaffold's project without its sales file (its products kept)."""
    p = tmp_path / "p"
    create_project(p, rows=10)
    (p / "data" / "sales.csv").unlink()
    return p


def go(project: Path, env: dict[str, str] | None = None) -> RunResult:
    return run(load_config(project / "retail-etl.yaml", env=env or {}))


def rows(project: Path, sql: str) -> list[dict]:
    return run_query(load_config(project / "retail-etl.yaml", env={}), sql).to_pylist()


def scalar(project: Path, sql: str):
    ((value,),) = [tuple(r.values()) for r in rows(project, sql)]
    return value


DELIVERIES = [  # three days of the till's sales.csv: 2, 3 and 1 lines
    body(line("A", 1, 1), line("A", 2, 1)),
    body(line("B", 1, 2), line("B", 2, 2), line("B", 3, 2)),
    body(line("C", 1, 3)),
]


def deliver_three(project: Path, env: dict[str, str] | None = None, texts: list[str] = DELIVERIES) -> list[RunResult]:
    results = []
    for text in texts:
        (project / "data" / "sales.csv").write_text(text)
        results.append(go(project, env))
    return results


def test_three_deliveries_of_one_name_accumulate(project: Path) -> None:
    results = deliver_three(project)
    assert scalar(project, "SELECT count(*) FROM retail_etl.sales_validated") == 6
    assert scalar(project, "SELECT count(*) FROM retail_etl.sales_enriched") == 6
    assert scalar(project, "SELECT count(DISTINCT delivery_id) FROM retail_etl.sales_enriched") == 3
    assert [r["sale_date"].day for r in rows(project, "SELECT sale_date FROM retail_etl.daily_sales ORDER BY 1")] \
        == [1, 2, 3]
    assert {r["source_file"] for r in rows(project, "SELECT source_file FROM retail_etl.sales_validated")} \
        == {"sales.csv"}
    assert all(r.replacements == [] for r in results)
    manifest = Lake(load_config(project / "retail-etl.yaml", env={})).raw.manifest("sales")
    assert [m.delivery_id[:8] for m in manifest] == ["00000000", "00000001", "00000002"]
    assert len({m.path for m in manifest}) == 3


def test_declared_replacement_keeps_the_last_delivery(project: Path) -> None:
    broken = [DELIVERIES[0], DELIVERIES[1] + "X,1,too,few\n", DELIVERIES[2]]  # one line quarantined on read
    results = deliver_three(project, REPLACE, broken)
    assert scalar(project, "SELECT count(*) FROM retail_etl.sales_quarantine") == 0
    assert [(r["transaction_id"], r["sale_date"].day) for r in rows(
        project, "SELECT transaction_id, sale_date FROM retail_etl.sales_enriched")] == [("C", 3)]
    assert scalar(project, "SELECT count(*) FROM retail_etl.sales_validated") == 1
    assert [r["sale_date"].day for r in rows(project, "SELECT sale_date FROM retail_etl.daily_sales")] == [3]
    assert [[(x.file, x.rows_removed, x.rows_added) for x in r.replacements] for r in results] == [
        [], [("sales.csv", 2, 4)], [("sales.csv", 4, 1)]]
    manifest = Lake(load_config(project / "retail-etl.yaml", env={})).raw.manifest("sales")
    ids = [m.delivery_id for m in manifest]
    assert [(x.delivery_id, x.replaced) for r in results for x in r.replacements] == [
        (ids[1], ids[:1]), (ids[2], ids[:2])]


def test_pending_deliveries_of_a_replaced_name_are_superseded_in_one_run(project: Path) -> None:
    lake = Lake(load_config(project / "retail-etl.yaml", env=REPLACE))
    for i, text in enumerate(DELIVERIES):
        src = project / f"in{i}" / "sales.csv"
        src.parent.mkdir()
        src.write_text(text)
        lake.raw.ingest("sales", [src], replace=True)
    result = go(project, REPLACE)
    (sales,) = [s for s in result.sources if s.source == "sales"]
    assert sales.files == ["sales.csv"] and sales.rows_read == 1
    assert scalar(project, "SELECT count(*) FROM retail_etl.sales_validated") == 1
    assert go(project, REPLACE).sources == []  # the superseded deliveries are marked processed


def test_two_files_of_one_name_from_two_folders_are_two_deliveries(project: Path) -> None:
    for folder, text in (("north", DELIVERIES[0]), ("south", DELIVERIES[1] + "X,1,too,few\n")):
        (project / "data" / folder).mkdir()
        (project / "data" / folder / "export.csv").write_text(text)
    env = {"RETAIL_ETL__SOURCES__SALES__PATH": "data/*/export.csv"}
    result = go(project, env)
    (sales,) = [s for s in result.sources if s.source == "sales"]
    assert sales.files == ["export.csv", "export.csv"] and sales.rows_valid == 5
    got = rows(project, "SELECT source_file, delivery_id, count(*) AS n FROM retail_etl.sales_enriched "
                        "GROUP BY ALL ORDER BY delivery_id")
    assert [(r["source_file"], r["n"]) for r in got] == [("export.csv", 2), ("export.csv", 3)]
    (broken,) = rows(project, "SELECT source_file, delivery_id, source_line FROM retail_etl.sales_quarantine "
                              "WHERE stage = 'read'")
    assert (broken["source_file"], broken["delivery_id"], broken["source_line"]) == (
        "export.csv", got[1]["delivery_id"], 5)
    assert go(project, env).sources == []


def test_a_file_rewritten_in_place_with_the_same_size_and_mtime_is_a_new_delivery(project: Path) -> None:
    sales = project / "data" / "sales.csv"
    sales.write_text(body(line("A", 1, 1, qty=1)))
    go(project)
    stat = sales.stat()
    sales.write_text(body(line("A", 1, 1, qty=2)))  # same size
    os.utime(sales, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert sales.stat().st_size == stat.st_size and sales.stat().st_mtime_ns == stat.st_mtime_ns
    result = go(project)
    assert [s.rows_read for s in result.sources if s.source == "sales"] == [1]
    # Same key twice: the first delivery's line wins by default.
    assert [r["quantity"] for r in rows(project, "SELECT quantity FROM retail_etl.sales_enriched")] == [1]
    assert scalar(project, "SELECT count(*) FROM retail_etl.sales_quarantine WHERE stage = 'transform'") == 1


@pytest.mark.parametrize(("key_wins", "kept", "said"), [
    ("first", 1, "first seen at sales_a.csv:2"), ("latest", 5, "latest delivery at sales_b.csv:3")])
def test_key_wins_first_or_latest_delivery_in_one_run_and_in_two(
    tmp_path: Path, key_wins: str, kept: int, said: str
) -> None:
    env = {"RETAIL_ETL__SOURCES__SALES__KEY_WINS": key_wins}
    files = {"sales_a.csv": body(line("K", 1, 5, qty=1), line("A", 1, 5)),
             "sales_b.csv": body(line("B", 1, 6), line("K", 1, 6, qty=5))}
    tables = []
    for split in (False, True):
        project = tmp_path / f"{key_wins}-{split}"
        create_project(project, rows=10)
        (project / "data" / "sales.csv").unlink()
        for name, text in files.items():
            (project / "data" / name).write_text(text)
            if split:
                go(project, env)
        go(project, env)
        (winner,) = rows(project, "SELECT quantity, sale_date FROM retail_etl.sales_enriched "
                                  "WHERE transaction_id = 'K'")
        assert (winner["quantity"], winner["sale_date"].day) == (kept, 5 if kept == 1 else 6)
        (loser,) = rows(project, "SELECT messages FROM retail_etl.sales_quarantine WHERE stage = 'transform'")
        assert said in loser["messages"][0]
        tables.append(rows(project, "SELECT transaction_id, quantity, sale_date, source_file, delivery_id "
                                    "FROM retail_etl.sales_enriched ORDER BY ALL"))
        tables.append(rows(project, "SELECT * FROM retail_etl.daily_sales ORDER BY ALL"))
    assert tables[:2] == tables[2:], "two runs give the tables of one"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-m", "retail_etl", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_ingest_replace_replaces_one_file_and_runs_show_reports_it(project: Path) -> None:
    (project / "data" / "sales.csv").write_text(DELIVERIES[1])
    go(project)
    correction = project / "corrections" / "sales.csv"
    correction.parent.mkdir()
    correction.write_text(DELIVERIES[0])
    said = cli("ingest", "sales", str(correction), "--replace", cwd=project).stdout
    assert "replaces its earlier deliveries" in said and "delivery 00000001-" in said
    shutil.rmtree(project / "corrections")
    summary = cli("run", cwd=project).stdout
    assert "replaced: sales/sales.csv" in summary and "3 rows removed, 2 rows added" in summary
    assert scalar(project, "SELECT count(*) FROM retail_etl.sales_validated") == 2
    assert {r["transaction_id"] for r in rows(project, "SELECT transaction_id FROM retail_etl.sales_enriched")} \
        == {"A"}
    (latest,) = json.loads(cli("runs", "list", "--format", "json", "--limit", "1", cwd=project).stdout)
    shown = json.loads(cli("runs", "show", latest["id"], "--format", "json", cwd=project).stdout)
    (validate,) = [s for s in shown["steps"] if s["step"] == "validate"]
    (replacement,) = validate["details"]["replacements"]
    assert (replacement["source"], replacement["file"], replacement["rows_removed"], replacement["rows_added"]) \
        == ("sales", "sales.csv", 3, 2)
    assert replacement["replaced"][0].startswith("00000000-")
    table = cli("runs", "show", latest["id"], cwd=project).stdout
    assert "replaced:" in table and "3 rows removed, 2 rows added" in table
