"""Kill -9 at many moments of a run, run again: the tables equal those of an uninterrupted run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from retail_etl.config.loader import load_config
from retail_etl.pipeline import Lake
from retail_etl.query import run_query
from retail_etl.sample.generator import generate
from retail_etl.scaffold import create_project

ROWS = 200_000
KILLS = 8
TABLES = ("products", "sales_validated", "sales_quarantine", "sales_enriched",
          "daily_sales", "product_daily", "category_daily", "store_daily")
VOLATILE = ("run_id", "quarantined_at")

pytestmark = pytest.mark.slow


def _start(project: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "retail_etl", "run"], cwd=project,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _finish(project: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "retail_etl", "run"], cwd=project, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr


def _tables(project: Path) -> dict[str, str]:
    """Each table as one order-independent fingerprint (computed by DuckDB over the current snapshot)."""
    config = load_config(project / "retail-etl.yaml", env={})
    out = {}
    for table in TABLES:
        columns = [f.name for f in Lake(config).catalog.load(table).schema().fields if f.name not in VOLATILE]
        cols = ", ".join(f'"{c}"' for c in columns)
        digest = run_query(config, f"SELECT count(*) AS n, bit_xor(hash(({cols}))) AS h, "
                                   f"sum(hash(({cols})) % 1000003) AS s FROM retail_etl.{table}").to_pylist()[0]
        out[table] = f"{digest['n']}:{digest['h']}:{digest['s']}"
    return out


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], float]:
    """A project with three sales files, and its tables after one uninterrupted run (and its duration)."""
    base = tmp_path_factory.mktemp("crash")
    project = base / "template"
    create_project(project, rows=10)
    (project / "data" / "sales.csv").unlink()
    gen = generate(base / "gen", ROWS, 60, seed=5, dirty_rate=0.03)
    shutil.copy(gen.products_path, project / "data" / "products.csv")
    header, *body = gen.sales_path.read_bytes().split(b"\n")
    body = [b for b in body if b]
    third = len(body) // 3 + 1
    for i in range(3):
        (project / "data" / f"sales_{i}.csv").write_bytes(b"\n".join([header, *body[i * third:(i + 1) * third]]) + b"\n")
    reference = base / "reference"
    shutil.copytree(project, reference)
    started = time.monotonic()
    _finish(reference)
    return project, _tables(reference), time.monotonic() - started


def test_kill_at_many_moments_then_rerun_gives_identical_tables(template, tmp_path: Path) -> None:
    project, expected, duration = template
    # Spread the kills over the whole run, from ingest to the last commits. The machine may be
    # faster now than when the reference ran: a run that ends before its kill is tried again, earlier.
    for i in range(KILLS):
        moment = duration * (i + 0.5) / KILLS
        for _ in range(6):
            copy = tmp_path / f"run{i}"
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(project, copy)
            proc = _start(copy)
            time.sleep(moment)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                break
            proc.wait()
            moment *= 0.6
        else:
            pytest.fail(f"runs kept finishing before the kill (last moment {moment:.2f}s)")
        _finish(copy)
        assert _tables(copy) == expected, f"kill at {moment:.2f}s of {duration:.2f}s"
        shutil.rmtree(copy)


# A run that dies right after a step's commits, before the step's journal is settled: the next run
# redoes the step and must replace the figures the dead run committed, not add to them.
KILL_AFTER_COMMITS = """
import os, signal, sys
from retail_etl.cli.main import main
from retail_etl.lake.state import StateStore

stage = sys.argv[1]
real_mark, real_clear = StateStore.mark_processed, StateStore.clear_pending_dates

def mark_processed(self, *args, **kwargs):
    if stage == "validate":
        os.kill(os.getpid(), signal.SIGKILL)
    return real_mark(self, *args, **kwargs)

def clear_pending_dates(self, name, *args, **kwargs):
    if stage == name:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_clear(self, name, *args, **kwargs)

StateStore.mark_processed, StateStore.clear_pending_dates = mark_processed, clear_pending_dates
sys.argv = ["retail-etl", "run"]
main()
"""


@pytest.mark.parametrize("stage", ["validate", "transform"])
def test_quality_figures_of_a_run_killed_after_its_commits_are_not_counted_twice(tmp_path: Path, stage: str) -> None:
    project = tmp_path / "p"
    create_project(project, rows=300)
    killed = subprocess.run([sys.executable, "-c", KILL_AFTER_COMMITS, stage], cwd=project, capture_output=True,
                            text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    config = load_config(project / "retail-etl.yaml", env={})
    committed = run_query(config, "SELECT count(*) AS n FROM retail_etl.quality_runs").to_pylist()[0]["n"]
    assert committed == 2, "the killed run committed its figures (one row per source)"
    _finish(project)
    lines = sum(1 for line in (project / "data" / "sales.csv").read_bytes().split(b"\n")[1:] if line.strip())
    runs = run_query(config, "SELECT source, count(*) AS n, sum(rows_read) AS rows_read FROM retail_etl.quality_runs "
                             "GROUP BY source ORDER BY source").to_pylist()
    assert [(r["source"], r["n"]) for r in runs] == [("products", 1), ("sales", 1)]
    assert runs[1]["rows_read"] == lines
    checks = run_query(config, "SELECT level, source, rule_id, count(*) AS n FROM retail_etl.quality_metrics "
                               "GROUP BY ALL HAVING count(*) > 1").to_pylist()
    assert checks == [], "every check is counted once"
    transform = run_query(config, "SELECT rule_id, rows_checked FROM retail_etl.quality_metrics "
                                  "WHERE level = 'transform' ORDER BY rule_id").to_pylist()
    validated = run_query(config, "SELECT count(*) AS n FROM retail_etl.sales_validated").to_pylist()[0]["n"]
    assert transform == [{"rule_id": "Transform.duplicate", "rows_checked": validated},
                         {"rule_id": "Transform.unknown_product", "rows_checked": validated}]
