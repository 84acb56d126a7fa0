"""Where a pipeline run spends its wall time: ``retail-etl run`` in-process, key functions timed.

    python bench/profile_phases.py --data DIR [--src SRC] [--bench-dir DIR]
    python bench/profile_phases.py --project PROJECT [--src SRC]

``DIR`` holds ``sales.csv`` and ``products.csv`` (e.g. a dataset ``bench/run.py`` generated): a fresh
project is made in ``<bench-dir>/work/profile``, run once, and deleted. ``PROJECT`` is an existing
project, run as it is (e.g. a year-long lake with a new day ingested). The functions in ``PHASES``
are wrapped with timers wherever the package refers to them; the report is a call tree of wall
and CPU seconds (inclusive; CPU counts all the process's threads, so it is less disturbed by other
load than wall time) and calls. Names missing from the code under test are skipped, so the script
keeps working while the pipeline is refactored. Writes and commits are labelled with their table.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import inspect
import os
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

# module: functions (``Class.method`` for methods)
PHASES = {
    "retail_etl.pipeline.validate": ["validate_step", "_touched_dates", "_stage_metrics"],
    "retail_etl.pipeline.transform": ["transform_step"],
    "retail_etl.pipeline.analytics": ["analytics_step"],
    "retail_etl.pipeline.tableio": ["StepIO.__enter__", "StepIO.__exit__", "StepIO.commit"],
    "retail_etl.lake.raw": ["RawZone.ingest"],
    "retail_etl.jobs.validate": ["validate", "check_headers", "_build_canonical", "_build_checked",
                                 "_failure_counts", "_evaluate_dataset_rules"],
    "retail_etl.sources.csv_reader": ["load_csv", "_load_duckdb", "_load_python", "_vouch", "_number_lines"],
    "retail_etl.jobs.transform": ["transform", "affected_dates"],
    "retail_etl.engines.duckdb": ["connect", "register_tables", "write_parquet", "arrow_schema"],
    "retail_etl.lake.catalog": ["Catalog.commit", "Catalog.ensure", "Catalog._matches", "Catalog.load"],
}

_stack: list[str] = []
_totals: dict[tuple[str, ...], list[float]] = defaultdict(lambda: [0.0, 0.0, 0])  # wall s, CPU s, calls


def _label(name: str, args: tuple) -> str:
    """``name``, plus the table for writes (``…/<table>/data/run_id=…``) and commits."""
    if name == "write_parquet" and len(args) > 2:
        parts = Path(args[2]).parts
        return f"{name}[{parts[parts.index('data') - 1]}]" if "data" in parts else name
    if name == "Catalog.commit" and len(args) > 1 and hasattr(args[1], "name"):
        return f"{name}[{args[1].name()[-1]}]"
    return name


def _timed(name: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _stack.append(_label(name, args))
        path = tuple(_stack)
        started, cpu = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            entry = _totals[path]
            entry[0] += time.perf_counter() - started
            entry[1] += time.process_time() - cpu
            entry[2] += 1
            _stack.pop()
    return wrapper


def instrument() -> list[str]:
    """Wrap every function of ``PHASES`` in every retail_etl module that refers to it; returns the missing."""
    missing = []
    for module_name, names in PHASES.items():
        module = importlib.import_module(module_name)
        for name in names:
            owner_name, _, attr = name.rpartition(".")
            owner = getattr(module, owner_name, None) if owner_name else module
            original = getattr(owner, attr, None) if owner is not None else None
            if original is None:
                missing.append(f"{module_name}.{name}")
                continue
            wrapped = _timed(name, original)
            static = isinstance(inspect.getattr_static(owner, attr), staticmethod)
            setattr(owner, attr, staticmethod(wrapped) if static else wrapped)
            if not owner_name:  # a module-level function may have been imported by name elsewhere
                for other in [m for n, m in sys.modules.items() if n.startswith("retail_etl") and m]:
                    if getattr(other, attr, None) is original:
                        setattr(other, attr, wrapped)
    return missing


def report(total: float) -> str:
    lines = [f"{'wall s':>8} {'share':>6} {'CPU s':>7} {'calls':>6}  phase (inclusive; children indented)"]
    for path, (seconds, cpu, calls) in sorted(_totals.items(), key=lambda kv: _order(kv[0])):
        lines.append(f"{seconds:8.2f} {seconds / total:6.1%} {cpu:7.2f} {calls:6d}  {'  ' * (len(path) - 1)}{path[-1]}")
    return "\n".join(lines)


def _order(path: tuple[str, ...]) -> tuple:
    """Parents before children; siblings by descending time."""
    return tuple((-_totals[path[: i + 1]][0], path[i]) for i in range(len(path)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--data", type=Path, help="folder holding sales.csv and products.csv: run a fresh project")
    where.add_argument("--project", type=Path, help="an existing project to run as it is")
    parser.add_argument("--src", default=os.environ.get("BENCH_SRC") or None,
                        help="a folder holding the retail_etl package to profile instead of the installed one")
    parser.add_argument("--bench-dir", type=Path, default=Path(os.environ.get("BENCH_DIR", "/tmp/retail-etl-bench")))
    args = parser.parse_args()
    if args.src:
        sys.path.insert(0, str(Path(args.src).resolve()))

    from retail_etl import pipeline
    from retail_etl.config.loader import load_config
    from retail_etl.scaffold import create_project

    project = args.project
    if args.data:
        project = args.bench_dir.resolve() / "work" / "profile"
        shutil.rmtree(project, ignore_errors=True)
        create_project(project, rows=10)
        for f in ("sales.csv", "products.csv"):
            shutil.copyfile(args.data / f, project / "data" / f)
    missing = instrument()
    started, cpu = time.perf_counter(), time.process_time()
    pipeline.run(load_config(project / "retail-etl.yaml"))
    total, cpu = time.perf_counter() - started, time.process_time() - cpu
    if args.data:
        shutil.rmtree(project)
    print(f"pipeline.run on {args.data or project}: {total:.2f} s wall, {cpu:.2f} s CPU (all threads); "
          f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(report(total))
    if missing:
        print(f"(not in this version, not timed: {', '.join(missing)})")


if __name__ == "__main__":
    main()
