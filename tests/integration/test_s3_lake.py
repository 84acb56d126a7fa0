"""The lake on S3 (a moto server on 127.0.0.1): the same tables as on a local folder, state, logs and
the lock in the bucket, credentials kept out of what the pipeline writes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from retail_etl.config.loader import load_config
from retail_etl.errors import LakeBusyError, LakeError
from retail_etl.lake.storage import S3Storage
from retail_etl.pipeline import Lake, run
from retail_etl.query import run_query
from retail_etl.sample.generator import generate
from retail_etl.scaffold import create_project
from tests.golden.test_golden import CASES, run_and_compare

TABLES = ("products", "sales_validated", "sales_quarantine", "sales_enriched",
          "daily_sales", "product_daily", "category_daily", "store_daily")
VOLATILE = {"run_id", "quarantined_at"}


def _s3_env(bucket: str, endpoint: str) -> dict[str, str]:
    return {"RETAIL_ETL__LAKE__ROOT": f"s3://{bucket}/lake", "RETAIL_ETL__LAKE__S3__ENDPOINT_URL": endpoint}


def _rows(config, table: str) -> list[tuple]:
    rows = run_query(config, f"SELECT * FROM retail_etl.{table}").to_pylist()
    return sorted((tuple((k, v) for k, v in sorted(r.items()) if k not in VOLATILE) for r in rows), key=repr)


def _keys(bucket: str, endpoint: str) -> list[str]:
    s3 = boto3.client("s3", endpoint_url=endpoint)
    return [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The scaffold with 3,000 dirty sales lines over 12 days, split into two files by line."""
    project = tmp_path / "p"
    create_project(project, rows=10)
    generate(project / "data", 3000, 12, seed=11, dirty_rate=0.06)
    lines = (project / "data" / "sales.csv").read_bytes().splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    (project / "data" / "sales.csv").unlink()
    (project / "staged").mkdir()
    (project / "staged" / "sales_b.csv").write_bytes(header + b"".join(body[1500:]))
    (project / "data" / "sales_a.csv").write_bytes(header + b"".join(body[:1500]))
    return project


def test_pipeline_on_s3_gives_the_tables_of_a_local_lake(
    project: Path, s3_bucket: str, moto_endpoint: str, tmp_path: Path
) -> None:
    # Local reference: both files in one run.
    local = tmp_path / "local"
    shutil.copytree(project, local)
    shutil.copy(local / "staged" / "sales_b.csv", local / "data")
    local_config = load_config(local / "retail-etl.yaml", env={})
    run(local_config)

    # S3: one file per run, so bookmarks, the date journal and the catalog travel through the bucket.
    config = load_config(project / "retail-etl.yaml", env=_s3_env(s3_bucket, moto_endpoint))
    run(config)
    shutil.copy(project / "staged" / "sales_b.csv", project / "data")
    second = run(config)
    assert second.ingested["sales"] == ["sales_b.csv"]

    for table in TABLES:
        assert _rows(config, table) == _rows(local_config, table), table
    assert not (project / "lake").exists()  # nothing of the lake on local disk

    keys = _keys(s3_bucket, moto_endpoint)
    assert {"lake/catalog.db", "lake/_state/state.db"} <= set(keys)
    assert "lake/_state/lock" not in keys  # released
    assert {"lake/raw/sales/_manifest.jsonl", "lake/raw/products/_manifest.jsonl"} <= set(keys)
    assert sum(k.startswith("lake/_logs/") and k.endswith(".jsonl") for k in keys) == 2
    assert any(k.startswith("lake/processed/sales_enriched/data/") for k in keys)
    assert any(k.startswith("lake/processed/sales_enriched/metadata/") for k in keys)

    # A third run finds nothing to do and adds no snapshot.
    lake = Lake(config)
    before = {t: len(lake.catalog.load(t).snapshots()) for t in lake.catalog.tables()}
    third = run(config)
    assert not third.ingested and third.transform is None
    lake = Lake(config)
    assert {t: len(lake.catalog.load(t).snapshots()) for t in lake.catalog.tables()} == before


@pytest.mark.parametrize(("fail_at", "error"), [(4, RuntimeError), (13, ConnectionError)])  # validate, transform
def test_a_catalog_write_that_fails_is_redone(
    project: Path, s3_bucket: str, moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    fail_at: int, error: type[Exception],
) -> None:
    """The ``fail_at``-th publication of the catalog fails after Iceberg wrote its metadata: the
    step's work is undone in the bucket. A transient error is retried within the run; any other
    fails the run and the next run redoes the work. Either way the tables are those of an
    uninterrupted run."""
    reference = tmp_path / "reference"
    shutil.copytree(project, reference)
    reference_config = load_config(reference / "retail-etl.yaml", env={})
    run(reference_config)

    config = load_config(project / "retail-etl.yaml", env=_s3_env(s3_bucket, moto_endpoint))
    real_call = S3Storage._call
    catalog_writes = []

    def call(self: S3Storage, what: str, fn, **kwargs):
        if kwargs.get("Key", "").endswith("/catalog.db") and what.startswith("write"):
            catalog_writes.append(what)
            if len(catalog_writes) == fail_at:
                raise error("connection reset")
        return real_call(self, what, fn, **kwargs)

    monkeypatch.setattr(S3Storage, "_call", call)
    if error is ConnectionError:
        result = run(config)
        assert result.transform is not None and len(catalog_writes) > fail_at
    else:
        with pytest.raises(RuntimeError):
            run(config)
        monkeypatch.setattr(S3Storage, "_call", real_call)
        run(config)
    for table in TABLES:
        assert _rows(config, table) == _rows(reference_config, table), table


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_case_on_s3(case: Path, tmp_path: Path, s3_bucket: str, moto_endpoint: str) -> None:
    run_and_compare(case, tmp_path, env=_s3_env(s3_bucket, moto_endpoint))


def test_cli_on_s3_lake_keeps_credentials_out(project: Path, s3_bucket: str, moto_endpoint: str) -> None:
    env = {**os.environ, **_s3_env(s3_bucket, moto_endpoint)}

    def cli(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "retail_etl", *args], cwd=project, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc

    out = cli("run", "--log-format", "json")
    count = cli("query", "--format", "csv", "SELECT count(*) FROM retail_etl.sales_validated").stdout
    assert int(count.split()[-1]) > 1000
    listing = cli("runs", "list").stdout
    execution = next(word for word in listing.split() if word.startswith("exec-"))
    log = cli("logs", execution, "--log-format", "json").stdout
    assert '"ExecutionSucceeded"' in log
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    assert secret not in out.stdout + out.stderr + log
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    for key in _keys(s3_bucket, moto_endpoint):
        if not key.endswith(".parquet"):
            assert secret.encode() not in s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read(), key


def test_the_lock_is_exclusive_and_a_dead_holder_is_taken_over(s3_bucket: str, moto_endpoint: str) -> None:
    config = load_config_for(s3_bucket, moto_endpoint)
    first, second = Lake(config).storage, Lake(config).storage
    with first.lock():
        with pytest.raises(LakeBusyError, match=f"pid {os.getpid()}"), second.lock():
            pass
    with second.lock():  # released by the first
        pass
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    s3.put_object(Bucket=s3_bucket, Key="lake/_state/lock", Body=json.dumps(
        {"host": socket.gethostname(), "pid": int(dead.stdout), "since": time.time()}).encode())
    with first.lock():  # its holder is gone
        assert json.loads(s3.get_object(Bucket=s3_bucket, Key="lake/_state/lock")["Body"].read())["pid"] == os.getpid()


def test_a_missing_bucket_is_a_clear_error(moto_endpoint: str, scaffold_config: Path) -> None:
    config = load_config(scaffold_config, env=_s3_env("no-such-bucket", moto_endpoint))
    with pytest.raises(LakeError, match="no-such-bucket"):
        run(config)


def load_config_for(bucket: str, endpoint: str):
    project = Path(__file__).resolve().parents[2] / "src" / "retail_etl" / "scaffold" / "retail-etl.yaml"
    return load_config(project, env=_s3_env(bucket, endpoint))


def test_raw_zone_on_s3_keeps_every_version_unchanged(s3_bucket: str, moto_endpoint: str, tmp_path: Path) -> None:
    import datetime as dt

    zone = Lake(load_config_for(s3_bucket, moto_endpoint)).raw
    src = tmp_path / "sales.csv"
    src.write_bytes(b"a,b\n1,\xe9\n")
    day = dt.date(2024, 3, 1)
    (first,) = zone.ingest("sales", [src], today=day)
    assert zone.ingest("sales", [src], today=day) == []  # same content: skipped
    src.write_bytes(b"a,b\n2,x\n")
    (second,) = zone.ingest("sales", [src], today=day)
    assert first.path == "raw/sales/ingest_date=2024-03-01/sales.csv"
    assert second.path == f"raw/sales/ingest_date=2024-03-01/sales.{second.sha256[:12]}.csv"
    assert [f.path for f in zone.manifest("sales")] == [first.path, second.path]
    assert zone.local_path(first).read_bytes() == b"a,b\n1,\xe9\n"
    head = boto3.client("s3", endpoint_url=moto_endpoint).head_object(Bucket=s3_bucket, Key=f"lake/{first.path}")
    assert head["Metadata"]["sha256"] == first.sha256
