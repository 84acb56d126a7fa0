"""Benchmark: the pipeline end to end against two hand-written baselines, plus the incremental case.

For each row count: generate sample data (cached), then RUNS times, interleaved so that load
from other processes hits every case alike:
- ``pipeline``: ``retail-etl run`` on a fresh project (``retail-etl init`` + the generated files);
- ``duckdb``: ``baselines/duckdb_baseline.py``, the same work as one DuckDB script;
- ``pandas``: ``baselines/pandas_baseline.py``, the same work as idiomatic pandas.
The counts and totals of the three must agree (checked after every run).
Then the incremental case: one new day ingested into a lake that holds a year, against the same
day on an empty lake (``retail-etl ingest`` + ``retail-etl run``, timed together).

Every measured command is a child process: wall seconds, CPU seconds and peak RSS come from
``os.wait4`` (the child and the descendants it waited for). Results go to stdout as a table,
to ``bench/results/<timestamp>.json`` and into the generated section of ``bench/RESULTS.md``.
Data lives in ``--bench-dir`` (default ``$BENCH_DIR`` or /tmp/retail-etl-bench), never in the repo.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path

import duckdb

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BASELINES = BENCH / "baselines"
DAY = dt.date(2025, 1, 1)  # the incremental day: after the generated year (2024)
TARGETS = {"pipeline_vs_duckdb": 1.25, "pandas_vs_pipeline": 6.0, "peak_mib": 2048, "incremental_ratio": 2.0}


@dataclass
class Sample:
    """One measured command."""

    wall: float
    cpu: float
    peak_mib: float
    output: str


@dataclass
class Case:
    """All runs of one case at one size."""

    name: str
    rows: int
    samples: list[Sample] = field(default_factory=list)
    figures: list[dict] = field(default_factory=list)  # counts and totals of each run, to compare

    @property
    def walls(self) -> list[float]:
        return [s.wall for s in self.samples]

    @property
    def median(self) -> float:
        return statistics.median(self.walls)

    @property
    def cpu_median(self) -> float:
        return statistics.median(s.cpu for s in self.samples)

    def summary(self, reference: Case | None) -> dict:
        return {
            "case": self.name, "rows": self.rows, "runs": len(self.samples),
            "wall_s_median": round(self.median, 2), "wall_s_min": round(min(self.walls), 2),
            "wall_s_max": round(max(self.walls), 2),
            "cpu_s_median": round(self.cpu_median, 2),
            "rows_per_s": round(self.rows / self.median), "peak_mib": round(max(s.peak_mib for s in self.samples)),
            "reference": reference.name if reference else None,
            "ratio": round(self.median / reference.median, 2) if reference else None,
            "cpu_ratio": round(self.cpu_median / reference.cpu_median, 2) if reference else None,
        }


class Bench:
    """Runs the cases; ``cli`` is the argv prefix of the retail-etl command under test."""

    def __init__(self, root: Path, cli: list[str], env: dict[str, str]) -> None:
        self.root = root
        self.cli = cli
        self.env = env
        self.log = open(root / "bench.log", "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the run

    def measure(self, argv: list[str], cwd: Path | None = None) -> Sample:
        """Run ``argv`` to its end; fail loudly on a non-zero exit."""
        self.log.write(f"\n$ (cd {cwd or Path.cwd()} && {' '.join(argv)})\n")
        self.log.flush()
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        with proc.stdout:
            output = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        self.log.write(output)
        if proc.returncode:
            raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}:\n{output[-3000:]}")
        return Sample(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, output)

    def etl(self, *args: str, cwd: Path) -> Sample:
        return self.measure([*self.cli, *args], cwd)

    # -- data -------------------------------------------------------------------------------------

    def dataset(self, rows: int, days: int, seed: int = 1, start: dt.date = dt.date(2024, 1, 1)) -> Path:
        """``sales.csv`` and ``products.csv`` from the project's generator, reused if already made."""
        folder = self.root / "data" / f"r{rows}-d{days}-s{seed}-{start}"
        params = {"rows": rows, "days": days, "seed": seed, "start": str(start), "dirty_rate": 0.02}
        marker = folder / "params.json"
        if marker.exists() and json.loads(marker.read_text()) == params:
            return folder
        shutil.rmtree(folder, ignore_errors=True)
        print(f"generating {rows:,} rows over {days} days in {folder}", flush=True)
        self.etl("sample-data", "--rows", str(rows), "--days", str(days), "--out", str(folder), "--seed", str(seed),
                 "--dirty-rate", "0.02", "--start", str(start), cwd=self.root)
        marker.write_text(json.dumps(params))
        return folder

    def new_day(self, rows: int) -> Path:
        """One day of sales after the year, its receipts renamed (``N…``) so they repeat no key of the year."""
        folder = self.dataset(rows, 1, seed=2, start=DAY)
        target = folder / f"sales_{DAY}.csv"
        if not target.exists():
            data = (folder / "sales.csv").read_bytes()
            target.write_bytes(re.sub(rb'(?m)^("?)R(\d{9}),', rb"\1N\2,", data))
        return target

    def project(self, folder: Path, data: Path, files: tuple[str, ...] = ("sales.csv", "products.csv")) -> Path:
        """A fresh ``retail-etl init`` project whose ``data/`` holds ``files`` from ``data`` and nothing else
        (the shipped retail-etl.yaml kept)."""
        shutil.rmtree(folder, ignore_errors=True)
        folder.parent.mkdir(parents=True, exist_ok=True)
        self.etl("init", str(folder), "--rows", "10", cwd=self.root)
        for f in (folder / "data").iterdir():
            f.unlink()
        for f in files:
            shutil.copyfile(data / f, folder / "data" / f)
        return folder

    # -- cases ------------------------------------------------------------------------------------

    def pipeline(self, data: Path, keep_as_template: bool = False, engine: str = "duckdb") -> tuple[Sample, dict]:
        """``retail-etl run --engine ENGINE`` on a fresh project; with ``keep_as_template``, the first lake is
        kept for the incremental case (see ``year_lake``)."""
        base = self.lake_dir(data)
        project = self.project(base / "project", data)
        sample = self.etl("run", "--engine", engine, cwd=project)
        figures = self.figures(project)
        if keep_as_template and not (base / "built").exists():
            shutil.copytree(project, base / "template", symlinks=True)
            (base / "built").touch()
        shutil.rmtree(project)
        if not any(base.iterdir()):
            base.rmdir()
        return sample, figures

    def baseline(self, script: str, data: Path) -> tuple[Sample, dict]:
        """One baseline script on ``data``; its figures are the last line it prints (JSON)."""
        out = self.root / "work" / "baseline-out"
        sample = self.measure([sys.executable, str(BASELINES / script), "--sales", str(data / "sales.csv"),
                               "--products", str(data / "products.csv"), "--out", str(out)])
        shutil.rmtree(out)
        return sample, json.loads(sample.output.strip().splitlines()[-1])

    def figures(self, project: Path) -> dict:
        """The pipeline's counts and totals, read back with ``retail-etl query``."""
        sql = """
            SELECT (SELECT sum(rows_read) FROM retail_etl.quality_runs WHERE source = 'sales') AS rows_read,
                   (SELECT sum(rows_valid) FROM retail_etl.quality_runs WHERE source = 'sales') AS rows_valid,
                   count(*) AS enriched, CAST(sum(net_amount) AS VARCHAR) AS net_revenue,
                   (SELECT CAST(sum(net_revenue) AS VARCHAR) FROM retail_etl.daily_sales) AS daily_net_revenue
            FROM retail_etl.sales_enriched
        """
        sample = self.etl("query", "--format", "json", " ".join(sql.split()), cwd=project)
        return json.loads(sample.output)[0]

    def lake_dir(self, data: Path) -> Path:
        """Where the pipeline's projects on ``data`` live (and the year lake's template, for this code)."""
        return self.root / "lakes" / f"{data.name}-{code_hash()}"

    def year_lake(self, data: Path) -> Path:
        """A folder holding ``template``: a project whose lake holds ``data`` (a year), built once per code version.

        Copies are restored at the path the template was built at (``project`` beside it): Iceberg
        metadata and the raw manifest hold absolute paths.
        """
        base = self.lake_dir(data)
        if not (base / "built").exists():
            print(f"building the year-long lake in {base}", flush=True)
            self.pipeline(data, keep_as_template=True)
        return base

    def incremental(self, year: Path, day: Path, products: Path) -> tuple[Sample, Sample]:
        """(the day ingested and run on the year lake, the same day on an empty lake with the same products)."""
        project = year / "project"
        shutil.rmtree(project, ignore_errors=True)
        shutil.copytree(year / "template", project, symlinks=True)
        on_year = _combined(self.etl("ingest", "sales", str(day), cwd=project), self.etl("run", cwd=project))
        alone = self.project(self.root / "work" / "day-alone", products, files=("products.csv",))
        day_alone = _combined(self.etl("ingest", "sales", str(day), cwd=alone), self.etl("run", cwd=alone))
        shutil.rmtree(alone)
        return on_year, day_alone


def reference(case: Case, cases: list[Case]) -> Case | None:
    """What a case is compared with: the DuckDB baseline of its size, or the day alone for the incremental day."""
    name = {"pipeline": "duckdb", "spark": "duckdb", "pandas": "duckdb",
            "incremental: day on year lake": "incremental: day alone"}
    return next((c for c in cases if c.name == name.get(case.name) and c.rows == case.rows), None)


def _combined(first: Sample, second: Sample) -> Sample:
    """Two commands measured as one: times added, the larger peak."""
    return Sample(first.wall + second.wall, first.cpu + second.cpu, max(first.peak_mib, second.peak_mib),
                  second.output)


def days_for(rows: int) -> int:
    """About 11,000 lines a day (1M rows: 90 days), at most a year."""
    return max(30, min(365, rows // 11_000))


def code_hash() -> str:
    """Hash of the retail_etl package under test (decides whether a cached lake can be reused)."""
    import retail_etl  # the package found with the same PYTHONPATH as the child processes

    digest = hashlib.sha256()
    for path in sorted(Path(retail_etl.__file__).parent.rglob("*")):
        if path.suffix in (".py", ".yaml"):
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def check(figures: dict[str, list[dict]]) -> list[str]:
    """Mismatches between the cases' counts and totals (empty when all agree)."""
    problems = []
    expected = figures["pipeline"][0] if "pipeline" in figures else None
    for case, runs in figures.items():
        for run in runs:
            for key in ("rows_read", "rows_valid", "enriched"):
                if expected and int(run[key]) != int(expected[key]):
                    problems.append(f"{case}: {key} = {run[key]}, pipeline says {expected[key]}")
            if expected and abs(Decimal(run["net_revenue"]) - Decimal(expected["net_revenue"])) > Decimal("0.01"):
                problems.append(f"{case}: net revenue {run['net_revenue']}, pipeline says {expected['net_revenue']}")
            if "daily_net_revenue" in run and run["daily_net_revenue"] != run["net_revenue"]:
                problems.append(f"{case}: daily_sales net revenue {run['daily_net_revenue']} "
                                f"!= enriched {run['net_revenue']}")
    return sorted(set(problems))


def machine() -> dict:
    """CPU model, cores, memory, versions and the load average when the run started."""
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    mem_kb = next(int(ln.split()[1]) for ln in open("/proc/meminfo") if ln.startswith("MemTotal"))
    import pandas
    import pyarrow

    return {
        "cpu": cpu, "nproc": os.cpu_count(), "memory_gib": round(mem_kb / 2**20, 1),
        "python": platform.python_version(), "duckdb": duckdb.__version__, "pandas": pandas.__version__,
        "pyarrow": pyarrow.__version__, "load_average_at_start": os.getloadavg(),
    }


def git_state(src: str | None) -> str:
    """Which code was measured: the repository's HEAD, where the package came from, and its hash."""
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "src"], capture_output=True,
                           text=True).stdout.strip()
    where = f"package from {src}" if src else f"working tree{' (src/ modified)' if dirty else ''}"
    return f"{head}, {where}, code hash {code_hash()}"


def table(rows: list[dict]) -> str:
    """A Markdown table of the summaries."""
    head = ("| case | rows | runs | wall s (median) | spread (min–max) | CPU s | rows/s | peak MiB | ratio (wall) "
            "| ratio (CPU) |")
    lines = [head, "|" + " --- |" * 10]
    for r in rows:
        ratio = f"{r['ratio']:.2f}× {r['reference']}" if r["ratio"] is not None else "—"
        cpu_ratio = f"{r['cpu_ratio']:.2f}×" if r.get("cpu_ratio") is not None else "—"
        lines.append(f"| {r['case']} | {r['rows']:,} | {r['runs']} | {r['wall_s_median']:.2f} | "
                     f"{r['wall_s_min']:.2f}–{r['wall_s_max']:.2f} | {r['cpu_s_median']:.2f} | "
                     f"{r['rows_per_s']:,} | {r['peak_mib']:,} | {ratio} | {cpu_ratio} |")
    return "\n".join(lines)


def verdicts(rows: list[dict]) -> list[str]:
    """The targets, judged on the measured medians (each line says met or NOT met)."""
    by = {(r["case"], r["rows"]): r for r in rows}
    out = []
    for (case, n), r in sorted(by.items(), key=lambda kv: (kv[0][0].startswith("incremental"), kv[0][1])):
        if case == "pipeline":
            duck, pandas = by.get(("duckdb", n)), by.get(("pandas", n))
            if duck:
                ratio, limit = r["wall_s_median"] / duck["wall_s_median"], TARGETS["pipeline_vs_duckdb"]
                cpu = r["cpu_s_median"] / duck["cpu_s_median"]
                out.append(_verdict(f"{n:,} rows: pipeline / DuckDB baseline = {ratio:.2f}× wall, {cpu:.2f}× CPU "
                                    f"(target ≤ {limit}×)", ratio <= limit))
            if pandas:
                speedup, limit = pandas["wall_s_median"] / r["wall_s_median"], TARGETS["pandas_vs_pipeline"]
                cpu = pandas["cpu_s_median"] / r["cpu_s_median"]
                out.append(_verdict(f"{n:,} rows: pipeline speed-up over pandas (pandas time / pipeline time) = "
                                    f"{speedup:.2f}× wall, {cpu:.2f}× CPU (target ≥ {limit}×)", speedup >= limit))
            limit = TARGETS["peak_mib"]
            out.append(_verdict(f"{n:,} rows: pipeline peak RSS {r['peak_mib']:,} MiB (target ≤ {limit:,} MiB)",
                                r["peak_mib"] <= limit))
        if case == "incremental: day on year lake":
            limit = TARGETS["incremental_ratio"]
            out.append(_verdict(f"incremental day ({n:,} rows) on a year-long lake / day alone = {r['ratio']:.2f}× "
                                f"wall, {r['cpu_ratio']:.2f}× CPU (target ≤ {limit}×)", r["ratio"] <= limit))
    return out


def _verdict(text: str, ok: bool) -> str:
    return f"- {'met' if ok else '**NOT met**'}: {text}"


def write_results_md(result: dict, command: str) -> None:
    """Replace the generated section of bench/RESULTS.md (the hand-written analysis around it stays)."""
    begin, end = "<!-- bench:begin (generated by bench/run.py) -->", "<!-- bench:end -->"
    m = result["machine"]
    section = "\n".join([
        begin,
        f"Run {result['started']} ({result['code']}), raw data in `{result['json']}`.",
        "",
        f"Machine: {m['cpu']}, {m['nproc']} cores, {m['memory_gib']} GiB; Python {m['python']}, "
        f"DuckDB {m['duckdb']}, pandas {m['pandas']}, pyarrow {m['pyarrow']}; "
        f"load average at start {', '.join(f'{x:.2f}' for x in m['load_average_at_start'])}.",
        "",
        f"Command: `{command}`",
        "",
        table(result["summary"]),
        "",
        *(result["verdicts"] or ["- no targets evaluated"]),
        *([""] + [f"- **MISMATCH**: {p}" for p in result["mismatches"]] if result["mismatches"] else
          ["", "- counts and totals: the baselines agree with the pipeline in every run (rows read, valid, "
           "enriched, net revenue; daily_sales net revenue = enriched):"]),
        *(f"  {int(rows):,} rows: {int(f['rows_read']):,} read, {int(f['rows_valid']):,} valid, "
          f"{int(f['enriched']):,} enriched, net revenue {f['net_revenue']}"
          for rows, cases in result["figures"].items() for f in cases.get("pipeline", [])[:1]),
        end,
    ])
    path = BENCH / "RESULTS.md"
    text = path.read_text(encoding="utf-8") if path.exists() else f"# Benchmark results\n\n{begin}\n{end}\n"
    if begin not in text:
        text += f"\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    path.write_text(head + section + rest.split(end, 1)[1], encoding="utf-8")


def save(result: dict, cases: list[Case], command: str) -> Path:
    """Summarise the cases measured so far into ``result``; write the JSON file and RESULTS.md."""
    done = [c for c in cases if c.samples]
    figures: dict[int, dict[str, list[dict]]] = {}
    for case in done:
        if case.figures:
            figures.setdefault(case.rows, {})[case.name] = case.figures
    result["figures"] = figures
    result["mismatches"] = [f"{rows:,} rows: {p}" for rows, f in figures.items() for p in check(f)]
    result["summary"] = [case.summary(reference(case, done)) for case in done]
    result["verdicts"] = verdicts(result["summary"])
    result["samples"] = {f"{c.name} {c.rows}": [asdict(s) | {"output": s.output[-2000:]} for s in c.samples]
                         for c in done}
    out = BENCH / "results" / f"{result['started']}.json"
    out.parent.mkdir(exist_ok=True)
    result["json"] = str(out.relative_to(REPO))
    out.write_text(json.dumps(result, indent=2, default=str))
    write_results_md(result, command)
    return out


def report(path: Path) -> None:
    """Rebuild the cases of a results JSON, then save it and RESULTS.md again with the current rendering."""
    result = json.loads(path.read_text())
    cases = []
    for key, samples in result["samples"].items():
        name, rows = key.rsplit(" ", 1)
        figures = result["figures"].get(rows, {}).get(name, [])
        cases.append(Case(name, int(rows), [Sample(**s) for s in samples], figures))
    save(result, cases, result.get("command", "python bench/run.py"))
    print(table(result["summary"]))
    print("\n".join(result["verdicts"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cases", nargs="+", default=["pipeline", "duckdb", "pandas", "incremental"],
                        choices=["pipeline", "spark", "duckdb", "pandas", "incremental"],
                        help="spark: the pipeline with --engine spark (for reference; peak memory is the "
                             "Python driver's, not the JVM's)")
    parser.add_argument("--year-rows", type=int, default=None,
                        help="rows of the year-long lake of the incremental case (default: the largest --rows)")
    parser.add_argument("--bench-dir", type=Path, default=Path(os.environ.get("BENCH_DIR", "/tmp/retail-etl-bench")))
    parser.add_argument("--src", default=os.environ.get("BENCH_SRC") or None,
                        help="a folder holding the retail_etl package to benchmark instead of the installed one "
                             "(put first on PYTHONPATH)")
    parser.add_argument("--report", type=Path, default=None,
                        help="measure nothing: re-render RESULTS.md (and the summary) from this results JSON")
    args = parser.parse_args()
    if args.report:
        report(args.report)
        return

    root = args.bench_dir.resolve()
    if root.is_relative_to(REPO):
        parser.error("--bench-dir must be outside the repository")
    root.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if args.src:
        src = str(Path(args.src).resolve())
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        sys.path.insert(0, src)
    cli = [sys.executable, "-c", "from retail_etl.cli.main import main; main()"]
    bench = Bench(root, cli, env)
    started = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    result = {"started": started, "code": git_state(args.src), "machine": machine(), "args": vars(args) | {
        "bench_dir": str(root)}}

    command = " ".join(["python", "bench/run.py", *sys.argv[1:]])
    result["command"] = command
    cases: list[Case] = []
    for rows in args.rows:
        days = days_for(rows)
        data = bench.dataset(rows, days)
        by_name = {name: Case(name, rows) for name in ("pipeline", "spark", "duckdb", "pandas") if name in args.cases}
        cases += by_name.values()
        for i in range(args.runs):
            for name, case in by_name.items():
                if name == "pipeline":
                    sample, figs = bench.pipeline(data, keep_as_template=days == 365)
                elif name == "spark":
                    sample, figs = bench.pipeline(data, engine="spark")
                else:
                    sample, figs = bench.baseline(f"{name}_baseline.py", data)
                case.samples.append(sample)
                case.figures.append(figs)
                print(f"{rows:>11,} rows  {name:<9} run {i + 1}/{args.runs}: {sample.wall:7.2f} s wall, "
                      f"{sample.cpu:7.2f} s CPU, {sample.peak_mib:6.0f} MiB peak", flush=True)
            problems = check({n: c.figures for n, c in by_name.items()})
            if problems:
                print("MISMATCH between the cases' numbers:\n  " + "\n  ".join(problems), file=sys.stderr, flush=True)
            save(result, cases, command)  # partial results survive an interrupted run

    if "incremental" in args.cases:
        year_rows = args.year_rows or max(args.rows)
        day_rows = year_rows // 365
        year_data = bench.dataset(year_rows, 365)
        year = bench.year_lake(year_data)
        day = bench.new_day(day_rows)
        on_year, alone = Case("incremental: day on year lake", day_rows), Case("incremental: day alone", day_rows)
        cases += [on_year, alone]
        for i in range(args.runs):
            a, b = bench.incremental(year, day, year_data)
            on_year.samples.append(a)
            alone.samples.append(b)
            print(f"{day_rows:>11,} rows  incremental run {i + 1}/{args.runs}: {a.wall:6.2f} s on the year lake, "
                  f"{b.wall:6.2f} s alone", flush=True)
            save(result, cases, command)

    out = save(result, cases, command)
    print()
    print(table(result["summary"]))
    print("\n".join(result["verdicts"]))
    if result["mismatches"]:
        print("\nMISMATCH:\n  " + "\n  ".join(result["mismatches"]), file=sys.stderr)
    print(f"\nwrote {out} and {BENCH / 'RESULTS.md'}")
    shutil.rmtree(root / "work", ignore_errors=True)
    sys.exit(1 if result["mismatches"] else 0)


if __name__ == "__main__":
    main()
