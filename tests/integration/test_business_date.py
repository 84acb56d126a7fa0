"""Business-date runs, execution inputs, sources that deliver nothing or late, and breached gates."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pyiceberg.expressions import EqualTo

from retail_etl.config.loader import load_config
from retail_etl.errors import QualityGateError
from retail_etl.pipeline import Lake, RunInputs, run, validate_step
from retail_etl.sample.generator import generate
from retail_etl.scaffold import create_project
from retail_etl.workflow import WorkflowState
from tests.integration.test_pipeline import TABLES, _project, _split, q, snapshots, table_rows

DAY = dt.date(2024, 1, 5)


def _config(project: Path):
    return load_config(project / "retail-etl.yaml", env={})


def _cli(project: Path, *args: str) -> subprocess.CompletedProcess:
    """The command line as a user runs it (its error boundary and exit codes)."""
    return subprocess.run([sys.executable, "-m", "retail_etl", *args, "--config", str(project / "retail-etl.yaml")],
                          capture_output=True, text=True, timeout=300)


def _edit(project: Path, change) -> None:
    path = project / "retail-etl.yaml"
    settings = yaml.safe_load(path.read_text())
    change(settings)
    path.write_text(yaml.safe_dump(settings))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[Path]]:
    """A lake built incrementally (three files, one run each) and a fresh full build of the same files."""
    tmp = tmp_path_factory.mktemp("bizdate")
    gen = generate(tmp / "gen", 600, 8, seed=11, dirty_rate=0.05)
    pieces = _split(gen.sales_path, tmp)
    whole = _project(tmp, "whole", pieces)
    inc = _project(tmp, "inc", [])
    for project in (whole, inc):
        shutil.copy(gen.products_path, project / "data" / "products.csv")
    run(_config(whole))
    for piece in pieces:
        shutil.copy(piece, inc / "data" / piece.name)
        run(_config(inc))
    return inc, whole, pieces


def _same_tables(a: Path, b: Path) -> None:
    for table in TABLES:
        assert table_rows(a, table) == table_rows(b, table), table


def test_run_date_rederives_that_sale_date_and_equals_a_full_build(built) -> None:
    inc, whole, _ = built
    before = snapshots(inc)
    result = run(_config(inc), date=DAY)
    assert result.sources == [] and result.dates == [DAY]
    assert result.transform is not None and result.transform.lines_in == q(
        inc, f"SELECT count(*) AS n FROM retail_etl.sales_validated WHERE sale_date = '{DAY}'")[0]["n"] > 0
    assert result.marts["daily_sales"] == 1
    after = snapshots(inc)
    assert after["sales_enriched"] > before["sales_enriched"] and after["daily_sales"] > before["daily_sales"]
    assert after["sales_validated"] == before["sales_validated"], "nothing new to validate"
    _same_tables(inc, whole)


def test_run_date_repairs_a_damaged_sale_date(built) -> None:
    inc, whole, _ = built
    lake = Lake(_config(inc))
    with lake.lock():
        for mart in ("daily_sales", "sales_enriched"):
            lake.catalog.commit(lake.catalog.load(mart), [], replace=[EqualTo("sale_date", DAY.isoformat())],
                                run_id="damage")
    assert q(inc, f"SELECT count(*) AS n FROM retail_etl.daily_sales WHERE sale_date = '{DAY}'")[0]["n"] == 0
    run(_config(inc), date=DAY)
    _same_tables(inc, whole)


def test_run_date_after_a_bookmark_reset_equals_a_full_build(built) -> None:
    inc, whole, _ = built
    lake = Lake(_config(inc))
    with lake.lock():
        assert lake.state.reset_bookmarks("sales", ["sales_2.csv"]) == 1
    result = run(_config(inc), date=DAY)
    (sales,) = result.sources
    assert sales.files == ["sales_2.csv"] and DAY in result.dates
    _same_tables(inc, whole)


def test_input_json_is_the_execution_input(built) -> None:
    inc, whole, _ = built
    shown = _cli(inc, "run", "--input", json.dumps({"date": DAY.isoformat()}), "--format", "json")
    assert shown.returncode == 0, shown.stderr
    summary = json.loads(shown.stdout.splitlines()[-1])
    assert summary["steps"]["transform"]["dates"] == [DAY.isoformat()]
    execution = WorkflowState(inc / "lake" / "_state" / "state.db").execution(summary["run_id"])
    assert execution.input == {"date": DAY.isoformat()}
    _same_tables(inc, whole)


def test_a_bad_input_is_a_usage_error_before_anything_runs(tmp_path: Path) -> None:
    project = tmp_path / "p"
    create_project(project, rows=10)
    shown = _cli(project, "run", "--input", '{"dat": "2024-01-05"}')
    assert shown.returncode == 2, shown.stderr
    assert "unknown key 'dat' in the execution input; did you mean 'date'?" in shown.stderr
    assert "Traceback" not in shown.stderr
    both = _cli(project, "run", "--input", '{"date": "2024-01-05"}', "--date", "2024-01-06")
    assert both.returncode == 2 and "not both" in both.stderr
    assert not (project / "lake").exists(), "nothing ran"


def test_ingest_date_processes_only_that_days_files(tmp_path: Path) -> None:
    gen = generate(tmp_path / "gen", 600, 6, seed=3, dirty_rate=0.0)
    first, second, _ = _split(gen.sales_path, tmp_path)
    project = _project(tmp_path, "p", [])
    shutil.copy(gen.products_path, project / "data" / "products.csv")
    lake = Lake(_config(project))
    lake.raw.ingest("products", [project / "data" / "products.csv"], today=dt.date(2024, 3, 1))
    lake.raw.ingest("sales", [first], today=dt.date(2024, 3, 1))
    lake.raw.ingest("sales", [second], today=dt.date(2024, 3, 2))
    assert _cli(project, "run", "--ingest-date", "2024-03-01").returncode == 0
    shown = _cli(project, "run", "--ingest-date", "2024-03-02", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    summary = json.loads(shown.stdout.splitlines()[-1])
    assert [(s["source"], s["files"]) for s in summary["steps"]["validate"]["sources"]] == [("sales", ["sales_2.csv"])]
    assert summary["steps"]["validate"]["notices"] == {"products": ["no new file"]}
    files = q(project, "SELECT source_file, max(run_id) = '" + summary["run_id"] + "' AS latest "
                       "FROM retail_etl.sales_validated GROUP BY 1 ORDER BY 1")
    assert files == [{"source_file": "sales_1.csv", "latest": False}, {"source_file": "sales_2.csv", "latest": True}]
    execution = WorkflowState(project / "lake" / "_state" / "state.db").execution(summary["run_id"])
    assert execution.input == {"ingest_date": "2024-03-02"}


def test_a_source_without_new_files_is_reported_in_the_summary_and_the_history(tmp_path: Path) -> None:
    project = tmp_path / "p"
    create_project(project, rows=50)
    (project / "web").mkdir()
    (project / "web" / "empty.csv").write_text((project / "data" / "sales.csv").read_text().splitlines()[0] + "\n")
    (project / "feed").mkdir()

    def add_sources(settings: dict) -> None:
        rules = [r for r in settings["sources"]["sales"]["rules"] if "RowCount" not in r["rule"]]
        settings["sources"]["web"] = {**settings["sources"]["sales"], "path": "web/*.csv", "rules": rules}
        settings["sources"]["feed"] = {**settings["sources"]["sales"], "path": "feed/*.csv"}

    _edit(project, add_sources)
    first = run(_config(project))
    assert first.notices == {"feed": ["no file matches 'feed/*.csv'"]}
    (web,) = [s for s in first.sources if s.source == "web"]
    assert web.rows_read == 0 and "file empty.csv holds no records" in web.warnings
    second = _cli(project, "run")
    assert second.returncode == 0, second.stderr
    for line in ("products: no new file", "sales: no new file", "web: no new file", "feed: no file matches"):
        assert line in second.stdout
    state = WorkflowState(project / "lake" / "_state" / "state.db")
    (latest,) = state.executions(limit=1)
    warnings = {(e.details["source"], e.details["message"])
                for e in state.events(latest.id) if e.type == "SourceWarning"}
    assert warnings == {("products", "no new file"), ("sales", "no new file"), ("web", "no new file"),
                        ("feed", "no file matches 'feed/*.csv'")}


def test_an_empty_file_is_left_to_a_row_count_rule_when_there_is_one(tmp_path: Path) -> None:
    project = tmp_path / "p"
    create_project(project, rows=50)
    header = (project / "data" / "sales.csv").read_text().splitlines()[0]
    (project / "data" / "sales_empty.csv").write_text(header + "\n")
    rules = yaml.safe_load((project / "retail-etl.yaml").read_text())["sources"]["sales"]["rules"]
    assert any(r["rule"].startswith("RowCount") for r in rules)
    (sales,) = [s for s in run(_config(project)).sources if s.source == "sales"]
    assert sales.files == ["sales.csv", "sales_empty.csv"]
    assert not any("holds no records" in w for w in sales.warnings)


def _age_deliveries(project: Path, source: str, age: dt.timedelta) -> None:
    """Move the ingest times of ``source``'s deliveries back by ``age`` in its raw manifest."""
    manifest = project / "lake" / "raw" / source / "_manifest.jsonl"
    entries = [json.loads(line) for line in manifest.read_text().splitlines()]
    for e in entries:
        e["ingested_at"] = (dt.datetime.fromisoformat(e["ingested_at"]) - age).isoformat(timespec="seconds")
    manifest.chmod(0o644)
    manifest.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in entries))


def test_a_late_source_warns_then_fails_its_gate(tmp_path: Path) -> None:
    project = tmp_path / "p"
    create_project(project, rows=50)
    _edit(project, lambda s: s["sources"]["sales"].update(expect={"every": "1h", "fail": "1d"}))
    assert "sales" not in run(_config(project)).notices, "just delivered"

    _age_deliveries(project, "sales", dt.timedelta(hours=3))
    late = run(_config(project)).notices["sales"]
    assert late[0] == "no new file" and late[1].startswith("late: newest delivery ingested at ")
    assert late[1].endswith("older than 1h")

    _age_deliveries(project, "sales", dt.timedelta(days=1))
    before = snapshots(project)
    failed = _cli(project, "run")
    assert failed.returncode == 3, failed.stderr
    assert "source 'sales': newest delivery ingested at" in failed.stderr and "older than 1d" in failed.stderr
    assert snapshots(project) == before


def test_a_source_that_never_delivered_is_late(tmp_path: Path) -> None:
    project = tmp_path / "p"
    create_project(project, rows=20)

    def add(settings: dict) -> None:
        settings["sources"]["web"] = {**settings["sources"]["sales"], "path": "web/*.csv", "expect": {"every": "1d"}}

    _edit(project, add)
    notices = run(_config(project)).notices
    assert notices["web"] == ["no file matches 'web/*.csv'", "late: no delivery yet; one is expected every 1d"]


def _broken(tmp_path: Path) -> tuple[Path, bytes]:
    """A project that ran once; its next file's payment methods are mostly unknown."""
    project = tmp_path / "p"
    create_project(project, rows=300)
    run(_config(project))
    good = (project / "data" / "sales.csv").read_bytes()
    lines = good.split(b"\n")
    bad = [lines[0]] + [ln.replace(b"R", b"X", 1).replace(b",card", b",bitcoin") for ln in lines[1:] if ln]
    (project / "data" / "sales_2.csv").write_bytes(b"\n".join(bad) + b"\n")
    return project, b"\n".join(bad) + b"\n"


def test_a_breached_gate_names_its_top_checks_and_keeps_its_figures(tmp_path: Path) -> None:
    project, bad = _broken(tmp_path)
    before = snapshots(project)
    shown = _cli(project, "run")
    assert shown.returncode == 3, shown.stderr
    lines = bad.decode().splitlines()
    bitcoin = sum(",bitcoin" in ln for ln in lines[1:])
    first_bad = next(i for i, ln in enumerate(lines, start=1) if ",bitcoin" in ln)
    assert "above the fail level 30%" in shown.stderr and "top failing checks:" in shown.stderr
    assert (f"ColumnValues.payment_method (ColumnValues \"payment_method\" in [\"card\", \"cash\", \"mobile\", "
            f"\"voucher\"]): {bitcoin} row(s), e.g. sales_2.csv:{first_bad}: payment_method must be in") in shown.stderr
    assert "got 'bitcoin'" in shown.stderr

    state = WorkflowState(project / "lake" / "_state" / "state.db")
    (failed,) = state.executions(limit=1)
    assert failed.status == "FAILED" and "top failing checks:" in failed.cause
    (row,) = q(project, f"SELECT * FROM retail_etl.quality_runs WHERE run_id = '{failed.id}'")
    assert (row["source"], row["status"], row["rows_read"], row["files"]) == ("sales", "failed", len(lines) - 1, 1)
    assert row["rows_quarantined"] >= bitcoin
    checks = {r["rule_id"]: r["rows_failed"] for r in q(
        project, f"SELECT rule_id, rows_failed FROM retail_etl.quality_metrics WHERE run_id = '{failed.id}'")}
    assert checks["ColumnValues.payment_method"] == bitcoin
    after = snapshots(project)
    assert {t: n for t, n in after.items() if t not in ("quality_runs", "quality_metrics")} == {
        t: n for t, n in before.items() if t not in ("quality_runs", "quality_metrics")}, "no other table changed"
    assert after["quality_runs"] > before["quality_runs"]
    assert {r["status"] for r in q(project, "SELECT status FROM retail_etl.quality_runs WHERE run_id <> "
                                            f"'{failed.id}'")} == {"passed"}
    listed = _cli(project, "runs", "show", failed.id)
    assert "ColumnValues.payment_method" in listed.stdout and f"{bitcoin} row(s)" in listed.stdout


def test_a_failed_gate_redone_by_the_same_run_counts_once(tmp_path: Path) -> None:
    project, _ = _broken(tmp_path)
    config = _config(project)
    lake = Lake(config)
    with lake.lock():
        for _ in range(2):
            with pytest.raises(QualityGateError, match="top failing checks"):
                validate_step(config, lake, "run-x", RunInputs(bookmarks="pause"))
    rows = q(project, "SELECT status, count(*) AS n FROM retail_etl.quality_runs WHERE run_id = 'run-x' GROUP BY 1")
    assert rows == [{"status": "failed", "n": 1}]
    metrics = q(project, "SELECT rule_id, count(*) AS n FROM retail_etl.quality_metrics WHERE run_id = 'run-x' "
                         "GROUP BY 1 HAVING count(*) > 1")
    assert metrics == []


def test_backfill_by_sale_date_rederives_each_date_of_the_range(built) -> None:
    inc, whole, _ = built
    shown = _cli(inc, "backfill", "--by", "sale-date", "--start", "2024-01-02", "--end", "2024-01-03",
                 "--format", "json")
    assert shown.returncode == 0, shown.stderr
    summaries = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [s["steps"]["transform"]["dates"] for s in summaries] == [["2024-01-02"], ["2024-01-03"]]
    state = WorkflowState(inc / "lake" / "_state" / "state.db")
    assert [state.execution(s["run_id"]).input for s in summaries] == [{"date": "2024-01-02"}, {"date": "2024-01-03"}]
    _same_tables(inc, whole)
