"""Golden cases: a small project in, expected tables out (written by hand from the documented rules).

Each folder under ``cases/`` holds a ``retail-etl.yaml``, its ``data/`` and ``expected/<table>.csv``
files naming the columns to compare. Every engine must produce these tables.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from retail_etl.config.loader import load_config
from retail_etl.config.model import EngineConfig
from retail_etl.pipeline import run
from retail_etl.query import run_query

CASES = sorted(p for p in (Path(__file__).parent / "cases").iterdir() if p.is_dir())


def _text(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "|".join(map(str, value))
    return "" if value is None else str(value)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_case(case: Path, tmp_path: Path) -> None:
    run_and_compare(case, tmp_path)


def run_and_compare(
    case: Path, tmp_path: Path, engine: EngineConfig | None = None, env: dict[str, str] | None = None
) -> None:
    """Run ``case`` (on ``engine``, default as configured; ``env`` overrides the configuration) and
    compare the tables with the expected ones."""
    project = tmp_path / case.name
    shutil.copytree(case, project, ignore=shutil.ignore_patterns("expected"))
    config = load_config(project / "retail-etl.yaml", env=env or {})
    if engine is not None:
        config = config.model_copy(update={"engine": engine})
    run(config)
    for expected_file in sorted((case / "expected").glob("*.csv")):
        with open(expected_file, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            columns = next(reader)
            expected = sorted(tuple(row) for row in reader)
        select = ", ".join(f'"{c}"' for c in columns)
        rows = run_query(config, f"SELECT {select} FROM retail_etl.{expected_file.stem}").to_pylist()
        actual = sorted(tuple(_text(r[c]) for c in columns) for r in rows)
        assert actual == expected, expected_file.stem
