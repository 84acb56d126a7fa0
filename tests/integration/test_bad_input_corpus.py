"""The bad-input corpus through the command line: each kind of file has its expected outcome.

Clean cases share one project and one ``retail-etl run`` (each case's lines carry their own
transaction ids, so their outcomes are independent) and are checked file by file through
``retail-etl query --format json``: validated and quarantined lines with their failed rules,
rows conserved (lines read = valid + quarantined, validated = enriched + transform-quarantined,
and the run's ``quality_runs`` totals equal the sum over the files). A case that needs source
settings of its own gets its own source in that project. Cases that fail (or may, today) or run
another command than ``run`` get a project each. Every command's output has no traceback and at
most one error line plus one hint line; a failed run commits nothing.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import SCAFFOLD
from tests.integration.cases.bad_input import PRODUCTS_CSV, TRANSFORM_RULES, Case, cases

CASES = cases()
GROUPED = [c for c in CASES if not c.alone]


@dataclass
class Outcome:
    """What a command did to a project, and what the tables hold afterwards."""

    project: Path
    proc: subprocess.CompletedProcess
    validated: Counter  # source_file -> lines
    enriched: Counter  # source_file -> lines
    quarantined: dict[str, list[tuple[str, tuple[str, ...]]]]  # source_file -> (stage, failed rules) per line
    values: dict[str, list[dict]]  # source_file -> validated lines (some columns), in line order
    quality_runs: list[dict]

    @property
    def output(self) -> str:
        return self.proc.stdout + self.proc.stderr


def _config(group: Iterable[Case]) -> dict:
    config = yaml.safe_load(SCAFFOLD.read_text())
    config["sources"]["products"]["path"] = "ref/products*.csv"
    sales = config["sources"]["sales"]
    sales["path"] = "data/*.csv"
    # The corpus is dirty on purpose: no run-level gate, no alerts, no retries.
    sales["thresholds"] = {"quarantine_rate": {"warn": None, "fail": None}}
    sales["rules"] = [r for r in sales["rules"] if "RowCount" not in r["rule"]]
    config["notifications"]["channels"] = []
    config["workflow"]["retry"] = []
    for case in group:
        if case.source:
            config["sources"][case.source_name] = _with(sales, case.source, path=f"{case.folder}/*.csv")
    return config


def _with(sales: dict, overrides: Mapping[str, object], **more: object) -> dict:
    """A copy of the sales source with ``overrides`` (a mapping is merged, a function edits the value)."""
    source = copy.deepcopy(sales)
    for key, value in {**overrides, **more}.items():
        if callable(value):
            source[key] = value(source.get(key))
        elif isinstance(value, Mapping):
            source[key] = {**source.get(key, {}), **value}
        else:
            source[key] = value
    return source


def _make_project(root: Path, group: list[Case]) -> Path:
    (root / "ref").mkdir(parents=True)
    (root / "ref" / "products.csv").write_text(PRODUCTS_CSV)
    (root / "data").mkdir()
    (root / "retail-etl.yaml").write_text(yaml.safe_dump(_config(group), allow_unicode=True))
    for case in group:
        folder = root / case.folder
        folder.mkdir(exist_ok=True)
        for rel, content in case.files.items():
            path = folder / rel if "/" not in rel else root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        if case.setup:
            case.setup(folder)
    return root


def _cli(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "retail_etl", *args], cwd=project, capture_output=True,
                          timeout=300, env=env)


def _query(project: Path, sql: str) -> list[dict]:
    """Rows of ``retail-etl query --format json`` (in-process: the corpus runs dozens of them)."""
    from typer.testing import CliRunner

    from retail_etl.cli.main import app

    result = CliRunner().invoke(app, ["query", "--format", "json", "-c", str(project / "retail-etl.yaml"), sql])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _tables(project: Path) -> set[str]:
    from retail_etl.config.loader import load_config
    from retail_etl.lake.catalog import Catalog
    from retail_etl.lake.storage import open_storage

    config = load_config(project / "retail-etl.yaml")
    return set(Catalog(open_storage(config), config.lake.namespace).tables())


def _run(project: Path, command: tuple[str, ...]) -> Outcome:
    proc = _cli(project, *command)
    proc = subprocess.CompletedProcess(proc.args, proc.returncode, _text(proc.stdout), _text(proc.stderr))
    have = _tables(project)

    def rows(table: str, sql: str) -> list[dict]:
        return _query(project, sql) if table in have else []

    validated = Counter({r["f"]: r["n"] for r in rows(
        "sales_validated", "select source_file as f, count(*) as n from retail_etl.sales_validated group by 1")})
    enriched = Counter({r["f"]: r["n"] for r in rows(
        "sales_enriched", "select source_file as f, count(*) as n from retail_etl.sales_enriched group by 1")})
    quarantined: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for r in rows("sales_quarantine", "select source_file, stage, failed_rules from retail_etl.sales_quarantine"):
        quarantined.setdefault(r["source_file"], []).append((r["stage"], tuple(sorted(r["failed_rules"]))))
    values: dict[str, list[dict]] = {}
    for r in rows("sales_validated", f"select source_file, {', '.join(VALUE_COLUMNS)} from retail_etl.sales_validated "
                  "order by source_file, source_line"):
        values.setdefault(r.pop("source_file"), []).append(r)
    runs = rows("quality_runs", "select * from retail_etl.quality_runs where source <> 'products'")
    return Outcome(project, proc, validated, enriched, quarantined, values, runs)


VALUE_COLUMNS = ("sale_date", "product_id", "left(customer_id, 20) as customer_id",
                 "length(customer_id) as customer_length", "quantity", "unit_price", "discount_amount",
                 "payment_method")


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="backslashreplace")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    project = _make_project(tmp_path_factory.mktemp("corpus") / "shared", GROUPED)
    return _run(project, ("run",))


def _outcome(case: Case, request: pytest.FixtureRequest, tmp_path: Path) -> Outcome:
    if not case.alone:
        return request.getfixturevalue("shared")
    project = _make_project(tmp_path / "project", [case])
    return _run(project, case.command)


def _assert_quiet(out: Outcome, case: Case) -> None:
    assert "Traceback" not in out.output, out.output
    errors = [ln for ln in out.proc.stderr.splitlines() if ln.startswith("error")]
    hints = [ln for ln in out.proc.stderr.splitlines() if ln.strip().startswith("hint:")]
    assert len(errors) <= 1 and len(hints) <= 1, out.proc.stderr
    if case.error is None:
        assert out.proc.returncode == 0, out.output
        assert not errors, out.proc.stderr
        return
    assert out.proc.returncode == case.exit_code, out.output
    assert len(errors) == 1 and case.error in errors[0], out.proc.stderr
    assert len(hints) == 1, out.proc.stderr
    # The error line and its hint are the whole story: nothing else on stderr but the run's event log.
    others = [ln for ln in out.proc.stderr.splitlines() if ln not in errors + hints and not _is_event(ln)]
    assert not others, out.proc.stderr


def _is_event(line: str) -> bool:
    """A line of the execution's event log (``--log-format text``: timestamp, level, step, event)."""
    parts = line.split()
    return len(parts) >= 4 and parts[2] in ("INFO", "WARNING", "ERROR")


def _assert_rows(out: Outcome, case: Case) -> None:
    names = case.names
    valid = sum(out.validated[n] for n in names)
    quarantine = [q for n in names for q in out.quarantined.get(n, [])]
    early = [rules for stage, rules in quarantine if stage != "transform"]
    late = [rules for stage, rules in quarantine if stage == "transform"]
    assert valid == case.valid, (valid, quarantine)
    assert sorted(rules for _, rules in quarantine) == sorted(case.quarantined)
    assert valid + len(early) == case.expected_records  # every line read is validated or quarantined
    assert sum(out.enriched[n] for n in names) + len(late) == valid  # and every validated line goes on
    assert all(set(rules) <= set(TRANSFORM_RULES) for rules in late)
    if case.source:  # a source of its own: the run's own figures agree too
        (run,) = [r for r in out.quality_runs if r["source"] == case.source_name]
        assert (run["rows_read"], run["rows_valid"], run["rows_quarantined"]) == (
            case.expected_records, case.valid, case.early_quarantined)
    lines = [r for n in names for r in out.values.get(n, [])]
    for column, expected in case.values.items():
        assert tuple(r[column] for r in lines) == expected, column


def _params() -> list:
    return [pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else [])
            for c in CASES]


def test_the_corpus_has_every_kind_of_file() -> None:
    assert len({c.id for c in CASES}) == len(CASES) >= 60
    kinds = Counter(c.kind for c in CASES)
    for kind in ("encodings", "quoting", "line endings", "field counts", "sizes", "names", "numbers", "dates",
                 "symlinks", "duplicates", "references"):
        assert kinds[kind] >= 1, kind
    names = [n for c in GROUPED for n in c.names]
    assert len(names) == len(set(names))  # each shared file is checked on its own


@pytest.mark.parametrize("case", _params())
def test_case(case: Case, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    out = _outcome(case, request, tmp_path)
    _assert_quiet(out, case)
    if case.error is None:
        _assert_rows(out, case)
    else:
        # A failed run commits nothing: no lines, no quality figures.
        assert not out.validated and not out.quarantined and not out.quality_runs
    if case.check:
        case.check(out.project, out.output)


def test_the_shared_run_conserves_every_line(shared: Outcome) -> None:
    assert sorted(r["source"] for r in shared.quality_runs) == sorted({c.source_name for c in GROUPED})
    assert sum(r["rows_read"] for r in shared.quality_runs) == sum(c.expected_records for c in GROUPED)
    assert sum(r["rows_valid"] for r in shared.quality_runs) == sum(shared.validated.values()) == sum(
        c.valid for c in GROUPED)
    early = sum(1 for qs in shared.quarantined.values() for stage, _ in qs if stage != "transform")
    assert sum(r["rows_quarantined"] for r in shared.quality_runs) == early == sum(
        c.early_quarantined for c in GROUPED)
    files = {n for c in GROUPED for n in c.names}
    assert set(shared.validated) | set(shared.quarantined) <= files
