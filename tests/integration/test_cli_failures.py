"""Anticipated failures, each run through the CLI as a user meets them: the documented exit code,
exactly one ``error:`` line followed by a hint, never a traceback, nothing committed, and the next
run, with the cause removed, recovers.

How each cause is made real:
- disk full: a 192 KiB tmpfs mounted as the lake (needs root or CAP_SYS_ADMIN); where mounting is
  refused, ENOSPC is injected into the subprocess's file copies instead (the test says which);
- a lake the user may not write: the lake's files made read-only and the CLI run as ``nobody``;
  where ``nobody`` cannot run this interpreter (it lives under a private home), as root with every
  capability dropped (``setpriv``), which obeys file permissions as any user does;
- missing credentials on S3: a moto server on 127.0.0.1 and an environment without any.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from retail_etl.lake.catalog import Catalog
from retail_etl.lake.storage import LocalStorage

SRC = Path(__file__).resolve().parents[2] / "src"
ROWS = 300
TABLES = ("products", "sales_validated", "sales_quarantine")
AWS_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE")
INJECT_ENOSPC = (
    "import errno, os, shutil, sys\n"
    "def full(src, dst, *a, **k):\n"
    "    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))\n"
    "shutil.copyfile = full\n"
    "sys.argv[0] = 'retail-etl'\n"
    "from retail_etl.cli.main import main\n"
    "main()\n"
)


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None, prefix: tuple[str, ...] = (),
        preexec=None, code: str | None = None) -> subprocess.CompletedProcess:
    run_env = {**os.environ, "PYTHONPATH": str(SRC), "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    entry = ["-c", code] if code else ["-m", "retail_etl"]
    return subprocess.run([*prefix, sys.executable, *entry, *args], cwd=cwd, env=run_env, capture_output=True,
                          text=True, timeout=300, preexec_fn=preexec)


def assert_one_line_error(proc: subprocess.CompletedProcess, exit_code: int, *words: str) -> tuple[str, str]:
    """The error line and its hint (checked: exit code, one ``error:`` line, a hint right after it, no
    traceback, each of ``words`` in the error line)."""
    output = proc.stdout + proc.stderr
    assert proc.returncode == exit_code, output
    assert "Traceback" not in output, output
    lines = proc.stderr.splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    (index,) = errors
    assert index + 1 < len(lines) and lines[index + 1].startswith("  hint: "), proc.stderr
    for word in words:
        assert word in lines[index], lines[index]
    return lines[index], lines[index + 1]


def data_lines(project: Path) -> int:
    body = (project / "data" / "sales.csv").read_bytes().split(b"\n")[1:]
    return sum(1 for line in body if line.strip())


def committed(lake: Path) -> dict[str, int]:
    """Rows per table in the lake's catalog (no catalog: nothing), and the validate-stage quarantine."""
    if not (lake / "catalog.db").exists():
        return {}
    catalog = Catalog(LocalStorage(lake), "retail_etl")
    try:
        return _rows(catalog)
    finally:
        catalog.reset()  # close the database: the lake may be a file system to unmount


def _rows(catalog: Catalog) -> dict[str, int]:
    out = {}
    for name in TABLES:
        table = catalog.load(name)
        if table is not None and table.current_snapshot() is not None:
            rows = table.scan().to_arrow()
            out[name] = rows.num_rows
            if name == "sales_quarantine":
                out["early_quarantine"] = sum(1 for stage in rows.column("stage").to_pylist() if stage != "transform")
    return out


def assert_recovered(proc: subprocess.CompletedProcess, project: Path, lake: Path) -> None:
    """The run succeeded and conserved every line of the sample: validated + quarantined = lines."""
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = committed(lake)
    assert rows["sales_validated"] + rows.get("early_quarantine", 0) == data_lines(project)
    assert rows["sales_validated"] > 0.9 * ROWS


@pytest.fixture
def project(tmp_path: Path) -> Path:
    proc = cli("init", "demo", "--rows", str(ROWS), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return tmp_path / "demo"


def test_lake_root_under_a_regular_file(project: Path) -> None:
    (project / "afile").write_text("not a folder")
    env = {"RETAIL_ETL__LAKE__ROOT": "afile/lake"}
    line, _ = assert_one_line_error(cli("run", cwd=project, env=env), 1, str(project / "afile"), "(ENOTDIR)")
    assert "a part of the path is a file, not a folder" in line
    assert (project / "afile").read_text() == "not a folder"
    assert_recovered(cli("run", cwd=project), project, project / "lake")


def test_a_file_name_too_long_for_the_file_system(project: Path) -> None:
    env = {"RETAIL_ETL__LAKE__ROOT": "lake-" + "x" * 300}
    assert_one_line_error(cli("run", cwd=project, env=env), 1, "file name too long", "(ENAMETOOLONG)")
    assert not (project / "lake").exists()
    assert_recovered(cli("run", cwd=project), project, project / "lake")


def test_custom_sql_rule_on_an_unknown_column(project: Path) -> None:
    config = project / "retail-etl.yaml"
    original = config.read_text()
    rule = 'CustomSql "SELECT COUNT(*) FROM primary WHERE quantty < 0" < 10'
    config.write_text(original.replace("      - rule: RowCount > 0\n",
                                       f"      - rule: {rule}\n        severity: warn\n      - rule: RowCount > 0\n"))
    for _ in range(3):  # as many as open the circuit: configuration errors never do
        line, hint = assert_one_line_error(cli("run", cwd=project), 1, "sources.sales.rules.12", "'quantty'")
    assert "column 'quantty' is not in its tables" in line and "did you mean 'quantity'?" in hint
    assert not (project / "lake").exists()  # found before anything was touched
    config.write_text(original.replace("      - rule: RowCount > 0\n", f"      - rule: {rule.replace('quantty', 'quantity')}"
                                       "\n        severity: warn\n      - rule: RowCount > 0\n"))
    assert_recovered(cli("run", cwd=project), project, project / "lake")


@contextlib.contextmanager
def small_file_system(folder: Path, size: str) -> Iterator[bool]:
    """A tmpfs of ``size`` mounted on ``folder``; yields False (and mounts nothing) where refused."""
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True).returncode == 0 if shutil.which("mount") else False
    try:
        yield mounted
    finally:
        if mounted and subprocess.run(["umount", str(folder)]).returncode != 0:
            subprocess.run(["umount", "--lazy", str(folder)], check=True)


def test_disk_full(project: Path) -> None:
    lake = project / "small"
    env = {"RETAIL_ETL__LAKE__ROOT": str(lake)}
    with small_file_system(lake, "192k") as mounted:
        if mounted:
            failed = cli("run", cwd=project, env=env)
        else:  # no mount here: the same failure, injected into the copies the lake makes
            failed = cli("run", cwd=project, env=env, code=INJECT_ENOSPC)
        line, _ = assert_one_line_error(failed, 1, "no space left on the device (ENOSPC)", str(lake))
        assert "RetryScheduled" not in failed.stderr  # permanent: not retried
        assert committed(lake) == {}, line
        if mounted:
            assert subprocess.run(["mount", "-o", "remount,size=64m", str(lake)]).returncode == 0
        assert_recovered(cli("run", cwd=project, env=env), project, lake)
    print(f"disk full made by {'a 192 KiB tmpfs' if mounted else 'an injected ENOSPC'}")


def _unprivileged(cwd: Path) -> tuple[tuple[str, ...], object, str]:
    """(command prefix, preexec_fn, how) to run the CLI without the power to ignore file permissions."""
    if os.geteuid() != 0:
        return (), None, "the current user"
    nobody = pwd.getpwnam("nobody")

    def as_nobody() -> None:
        os.setgroups([])
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)

    try:
        probe = subprocess.run([sys.executable, "-c", "pass"], cwd="/", capture_output=True, preexec_fn=as_nobody)
    except PermissionError:  # the interpreter is out of nobody's reach
        probe = None
    if probe is not None and probe.returncode == 0:
        return (), as_nobody, "nobody"
    setpriv = shutil.which("setpriv")
    if setpriv:
        prefix = (setpriv, "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs")
        if subprocess.run([*prefix, sys.executable, "-c", "pass"], capture_output=True).returncode == 0:
            return prefix, None, "root without capabilities"
    pytest.skip("cannot drop privileges here: nobody cannot run this interpreter and setpriv is missing")


def _tree_writable(root: Path, writable: bool) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if path.is_symlink():
            continue
        os.chmod(path, (mode | 0o200) if writable else (mode & ~0o222))


def test_a_lake_the_user_may_not_write(project: Path) -> None:
    prefix, preexec, how = _unprivileged(project)
    if preexec is not None:  # nobody needs to reach and own the project
        for parent in project.parents:
            if parent.is_relative_to(tempfile.gettempdir()) and parent != Path(tempfile.gettempdir()):
                os.chmod(parent, parent.stat().st_mode | 0o005)
        shutil.chown(project, "nobody")
        for path in project.rglob("*"):
            shutil.chown(path, "nobody")
    lake = project / "lake"
    first = cli("run", cwd=project, prefix=prefix, preexec=preexec)
    assert first.returncode == 0, first.stderr
    before = committed(lake)
    header, *rows = (project / "data" / "sales.csv").read_bytes().splitlines(keepends=True)
    (project / "data" / "sales_more.csv").write_bytes(b"".join([header, *reversed(rows)]))  # new content: a delivery
    _tree_writable(lake, False)
    try:
        failed = cli("run", cwd=project, prefix=prefix, preexec=preexec)
        line, _ = assert_one_line_error(failed, 1, "permission denied (EACCES)", str(lake))
        assert "RetryScheduled" not in failed.stderr
    finally:
        _tree_writable(lake, True)
    assert committed(lake) == before, line
    recovered = cli("run", cwd=project, prefix=prefix, preexec=preexec)
    assert recovered.returncode == 0, recovered.stderr
    assert committed(lake)["sales_validated"] == 2 * before["sales_validated"]
    print(f"unprivileged as {how}")


def test_missing_credentials_on_the_s3_lake(project: Path, s3_bucket: str, moto_endpoint: str) -> None:
    import boto3

    env = {"RETAIL_ETL__LAKE__ROOT": f"s3://{s3_bucket}/lake", "RETAIL_ETL__LAKE__S3__ENDPOINT_URL": moto_endpoint}
    bare = {k: v for k, v in os.environ.items() if k not in AWS_VARS}
    no_credentials = {**bare, **env, "AWS_SHARED_CREDENTIALS_FILE": str(project / "none"),
                      "AWS_CONFIG_FILE": str(project / "none"), "AWS_EC2_METADATA_DISABLED": "true"}
    started = time.monotonic()
    failed = subprocess.run([sys.executable, "-m", "retail_etl", "run"], cwd=project, capture_output=True, text=True,
                            timeout=120, env={**no_credentials, "PYTHONPATH": str(SRC)})
    line, hint = assert_one_line_error(failed, 1, f"s3://{s3_bucket}", "Unable to locate credentials")
    assert "AWS_ACCESS_KEY_ID" in hint
    assert "RetryScheduled" not in failed.stderr and time.monotonic() - started < 30, line  # no retries
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    assert s3.list_objects_v2(Bucket=s3_bucket).get("KeyCount", 0) == 0  # nothing written, nothing committed
    ok = cli("run", cwd=project, env=env)
    assert ok.returncode == 0, ok.stderr
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert "lake/catalog.db" in keys and any(k.startswith("lake/raw/sales/") for k in keys)


@pytest.mark.parametrize(("args", "code", "words"), [
    (("sample-data", "--out", "x", "--days", "0"), 2, "'--days'"),
    (("sample-data", "--out", "x", "--rows", "-5"), 2, "'--rows'"),
    (("init", "afile/demo"), 1, "(ENOTDIR)"),
    (("init", "y" * 300), 1, "(ENAMETOOLONG)"),
    (("run", "-c", "missing.yaml"), 1, "missing.yaml does not exist"),
    (("doctor", "-c", "missing.yaml"), 1, None),
])
def test_usage_and_path_mistakes(nested: Path, args: tuple[str, ...], code: int, words: str | None) -> None:
    proc = cli(*args, cwd=nested)
    if words is None:  # doctor reports instead of failing with one line
        assert proc.returncode == code and "fail" in proc.stdout and "missing.yaml does not exist" in proc.stdout
        return
    assert_one_line_error(proc, code, words)
    assert not (nested / "x").exists() and not (nested.parent / "lake").exists()


@pytest.fixture(scope="module")
def nested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder inside a project, holding a regular file: a parent's config must never be used."""
    base = tmp_path_factory.mktemp("nested")
    assert cli("init", "demo", "--rows", "10", cwd=base).returncode == 0
    inner = base / "demo" / "inner"
    inner.mkdir()
    (inner / "afile").write_text("x")
    return inner


def test_interrupted_run_prints_one_line(project: Path) -> None:
    code = ("import sys; sys.argv[0] = 'retail-etl'\n"
            "import retail_etl.config.loader as loader\n"
            "def stop(*a, **k): raise KeyboardInterrupt\n"
            "loader.load_config = stop\n"
            "from retail_etl.cli.main import main\n"
            "main()\n")
    proc = cli("run", cwd=project, code=code)
    assert_one_line_error(proc, 130, "interrupted")
