"""The S3 lake's lock and publication order, against a moto server on 127.0.0.1: database pushes
land in order and whole while the heartbeat pushes too; the lock lives while its holder beats, is
taken over once the beats stop, and of several takers exactly one wins; bad credentials are
permanent."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.s3.models import s3_backends
from werkzeug.serving import make_server

from retail_etl.config.loader import load_config
from retail_etl.config.model import LakeConfig, S3Config
from retail_etl.errors import LakeBusyError, LakeError, LakeUnavailableError
from retail_etl.lake.raw import RawFile
from retail_etl.lake.state import StateStore
from retail_etl.lake.storage import LOCK, STATE_DB, LocalStorage, S3Storage
from retail_etl.workflow import StepResult, runner_from_config
from tests.conftest import moto_environment

BEAT, STALE = 0.1, 1.5  # seconds: the smallest window the configuration accepts for this beat is 1.2
LOCK_KEY = f"lake/{LOCK}"


class _OneRequestAtATime:
    """S3 checks a conditional write's condition and writes in one atomic step; moto's threaded
    server checks, then writes, so two concurrent conditional PUTs could both pass. Serving one
    request at a time gives the tests S3's guarantee (the code under test is what may race)."""

    def __init__(self, app: DomainDispatcherApplication) -> None:
        self.app, self.lock = app, threading.Lock()
        #: Every version of an object whose key ends so, in the order the PUTs landed.
        self.watch: str | None = None
        self.landed: list[bytes] = []
        #: Up to this many seconds of network delay before a PUT reaches the store, so that
        #: requests sent concurrently may land in any order, as on a real network.
        self.jitter = 0.0

    def __call__(self, environ: dict, start_response) -> list[bytes]:
        if self.jitter and environ["REQUEST_METHOD"] == "PUT":
            time.sleep(random.uniform(0, self.jitter))
        with self.lock:
            out = list(self.app(environ, start_response))
            path = environ.get("PATH_INFO", "")
            if self.watch and environ["REQUEST_METHOD"] == "PUT" and path.endswith(self.watch):
                bucket, _, key = path.lstrip("/").partition("/")
                obj = s3_backends[DEFAULT_ACCOUNT_ID]["global"].get_object(bucket, key)
                if obj is not None:
                    self.landed.append(obj.value)
            return out


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, _OneRequestAtATime]]:
    """A moto server serving one request at a time, with test credentials in the environment."""
    moto_environment(monkeypatch)
    app = _OneRequestAtATime(DomainDispatcherApplication(create_backend_app))
    httpd = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", app
    finally:
        httpd.shutdown()
        thread.join()


@pytest.fixture
def endpoint(server: tuple[str, _OneRequestAtATime]) -> str:
    return server[0]


@pytest.fixture
def bucket(endpoint: str) -> str:
    name = f"lock-{os.urandom(6).hex()}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    return name


def _storage(bucket: str, endpoint: str) -> S3Storage:
    return S3Storage(f"s3://{bucket}/lake", LakeConfig(s3=S3Config(
        endpoint_url=endpoint, lock_heartbeat_seconds=BEAT, lock_stale_seconds=STALE)))


def _lock_object(s3, bucket: str) -> dict | None:
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=LOCK_KEY)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None


def _put_lock(s3, bucket: str, **holder: object) -> None:
    s3.put_object(Bucket=bucket, Key=LOCK_KEY, Body=json.dumps(holder).encode())


def _dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout)


# -- publication order --------------------------------------------------------------------------


def _bookmark(i: int) -> RawFile:
    return RawFile(source="sales", name=f"f{i:04d}.csv", path=f"raw/sales/f{i:04d}.csv", sha256="0" * 64,
                   size=i, ingested_at="2024-01-01T00:00:00+00:00", ingest_date="2024-01-01")


def test_pushes_land_whole_and_in_order_while_the_heartbeat_pushes(
    bucket: str, server: tuple[str, _OneRequestAtATime], scaffold_config: Path, tmp_path: Path
) -> None:
    """Many state transactions, each pushed, while the workflow heartbeat pushes state.db every
    0.1 s: every version of state.db that lands in the bucket is a sound SQLite database, and the
    versions never go back (bookmarks only grow, the heartbeat only advances); the last one holds
    everything."""
    endpoint, app = server
    config = load_config(scaffold_config, env={"RETAIL_ETL__LAKE__ROOT": f"s3://{bucket}/lake",
                                               "RETAIL_ETL__LAKE__S3__ENDPOINT_URL": endpoint})
    storage = _storage(bucket, endpoint)
    transactions = 40

    def step(_ctx) -> StepResult:
        state = StateStore(storage)
        for i in range(transactions):
            state.mark_processed([_bookmark(i)], run_id="r")
        return StepResult(rows_out=transactions)

    app.watch, app.jitter = f"/lake/{STATE_DB}", 0.05
    with storage.lock():
        runner = runner_from_config(config, {"validate": step}, storage=storage, heartbeat_seconds=BEAT)
        execution = runner.start()
    app.watch, app.jitter = None, 0.0
    assert execution.succeeded, execution.error

    versions = []
    for i, body in enumerate(app.landed):
        copy = tmp_path / f"v{i}.db"
        copy.write_bytes(body)
        con = sqlite3.connect(copy)
        try:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok", f"version {i} is damaged"
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            count = con.execute("SELECT count(*) FROM bookmarks").fetchone()[0] if "bookmarks" in tables else 0
            beat = con.execute("SELECT coalesce(max(heartbeat_at), '') FROM executions").fetchone()[0]
            status = con.execute("SELECT status FROM executions").fetchall()
        finally:
            con.close()
        versions.append((count, beat, status))
    counts, beats = [v[0] for v in versions], [v[1] for v in versions if v[1]]
    assert counts == sorted(counts), "a version with fewer bookmarks landed after one with more"
    assert beats == sorted(beats), "an older heartbeat landed after a newer one"
    assert versions[-1] == (transactions, max(beats), [("SUCCEEDED",)])
    assert len(versions) >= transactions + 2  # every transaction's push landed, and the execution's own


# -- the lock ------------------------------------------------------------------------------------


def _taker(endpoint: str, bucket: str, rounds: int, barriers: tuple, results) -> None:
    """One contender (its own process, client and storage): each round, try the lock at once."""
    start, tried, checked, released = barriers
    storage = _storage(bucket, endpoint)
    for r in range(rounds):
        start.wait(30)
        try:
            with storage.lock():
                results.put((r, os.getpid(), "won"))
                tried.wait(30)
                checked.wait(30)
        except LakeBusyError:
            results.put((r, os.getpid(), "busy"))
            tried.wait(30)
            checked.wait(30)
        except Exception as exc:  # reported to the test, which fails on it
            results.put((r, os.getpid(), repr(exc)))
            tried.wait(30)
            checked.wait(30)
        released.wait(30)


def test_of_two_processes_taking_a_stale_lock_exactly_one_wins(bucket: str, endpoint: str) -> None:
    rounds, takers = 20, 2
    ctx = multiprocessing.get_context("spawn")
    barriers = tuple(ctx.Barrier(takers + 1) for _ in range(4))
    results = ctx.Queue()
    procs = [ctx.Process(target=_taker, args=(endpoint, bucket, rounds, barriers, results)) for _ in range(takers)]
    for p in procs:
        p.start()
    s3 = boto3.client("s3", endpoint_url=endpoint)
    dead = _dead_pid()
    start, tried, checked, released = barriers
    try:
        for r in range(rounds):
            _put_lock(s3, bucket, host=socket.gethostname(), pid=dead, since=time.time())  # its holder is gone
            start.wait(30)
            tried.wait(60)
            holder = _lock_object(s3, bucket)  # while the winner holds it
            checked.wait(30)
            released.wait(30)
            got = sorted((results.get(timeout=10) for _ in range(takers)), key=lambda x: x[2])
            assert {o[0] for o in got} == {r}
            assert [o[2] for o in got] == ["busy", "won"], got
            assert holder is not None and holder["pid"] == got[1][1]  # the winner's lock is the one in place
        assert _lock_object(s3, bucket) is None  # every winner released its lock
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    assert all(p.exitcode == 0 for p in procs)


_HOLDER = """
import socket, sys, time
socket.gethostname = lambda: "another-host"
from retail_etl.config.model import LakeConfig, S3Config
from retail_etl.lake.storage import S3Storage
storage = S3Storage(sys.argv[1], LakeConfig(s3=S3Config(endpoint_url=sys.argv[2],
    lock_heartbeat_seconds=float(sys.argv[3]), lock_stale_seconds=float(sys.argv[4]))))
with storage.lock():
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_live_lock_of_another_host_is_kept_and_taken_over_once_its_beats_stop(
    bucket: str, endpoint: str
) -> None:
    """A holder on "another host" (its pid means nothing here) keeps its lock for twice the
    staleness window by beating; killed with SIGKILL, its lock is taken over within the window."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, f"s3://{bucket}/lake", endpoint, str(BEAT), str(STALE)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        storage = _storage(bucket, endpoint)
        s3 = boto3.client("s3", endpoint_url=endpoint)
        first = _lock_object(s3, bucket)
        refused = 0
        deadline = time.monotonic() + 2 * STALE + 1
        while time.monotonic() < deadline:
            with pytest.raises(LakeBusyError, match=f"pid {holder.pid} on another-host"), storage.lock():
                pass
            refused += 1
            time.sleep(0.2)
        assert refused >= 10
        later = _lock_object(s3, bucket)
        assert later["token"] == first["token"] and later["beat"] > first["since"] + 2 * STALE

        holder.send_signal(signal.SIGKILL)
        holder.wait()
        killed = time.monotonic()
        with storage.lock(wait=True):
            waited = time.monotonic() - killed
            assert _lock_object(s3, bucket)["pid"] == os.getpid()
        # Stale once the window has passed by the store's one-second clock (polled every second), not hours.
        assert STALE - 1 <= waited <= STALE + 4
    finally:
        holder.kill()
        holder.wait()


def test_a_run_whose_lock_was_taken_over_publishes_nothing_more(bucket: str, endpoint: str) -> None:
    storage = _storage(bucket, endpoint)
    s3 = boto3.client("s3", endpoint_url=endpoint)
    state = StateStore(storage)
    with storage.lock():
        state.mark_processed([_bookmark(0)], run_id="r")
        _put_lock(s3, bucket, host="another-host", pid=1, since=time.time())  # as a takeover would
        time.sleep(5 * BEAT)  # the next beat finds the lock changed
        with pytest.raises(LakeError, match="taken over by pid 1 on another-host"):
            state.mark_processed([_bookmark(1)], run_id="r")
    assert _lock_object(s3, bucket)["host"] == "another-host"  # not released: it is not ours
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "state.db"
        copy.write_bytes(s3.get_object(Bucket=bucket, Key=f"lake/{STATE_DB}")["Body"].read())
        with sqlite3.connect(copy) as con:
            assert con.execute("SELECT name FROM bookmarks").fetchall() == [("f0000.csv",)]


def test_the_staleness_window_must_exceed_two_beats() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="lock_stale_seconds"):
        S3Config(lock_heartbeat_seconds=30, lock_stale_seconds=60)
    assert S3Config().lock_stale_seconds == 120 and S3Config().lock_heartbeat_seconds == 30


# -- credentials ---------------------------------------------------------------------------------


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # it keeps the credentials it resolved first


def test_missing_credentials_fail_once_without_retries(
    endpoint: str, bucket: str, no_credentials: None, tmp_path: Path, scaffold_config: Path
) -> None:
    storage = _storage(bucket, endpoint)
    with pytest.raises(LakeError, match="no usable AWS credentials") as caught:
        storage.read_text("raw/sales/_manifest.jsonl")
    assert not caught.value.transient
    assert "AWS_ACCESS_KEY_ID" in (caught.value.hint or "")

    calls = []

    def step(_ctx) -> StepResult:
        calls.append(1)
        storage.read_text("raw/sales/_manifest.jsonl")
        return StepResult()

    config = load_config(scaffold_config, env={})
    runner = runner_from_config(config, {"validate": step}, storage=LocalStorage(tmp_path / "lake"),
                                sleep=lambda _s: None)
    execution = runner.start()
    assert execution.status == "FAILED" and "credentials" in execution.cause
    assert len(calls) == 1 and len(execution.steps) == 1


def test_missing_credentials_on_the_cli_are_one_line_with_a_hint(
    endpoint: str, bucket: str, no_credentials: None, scaffold_config: Path
) -> None:
    env = {**os.environ, "RETAIL_ETL__LAKE__ROOT": f"s3://{bucket}/lake",
           "RETAIL_ETL__LAKE__S3__ENDPOINT_URL": endpoint}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "retail_etl", "run"], cwd=scaffold_config.parent, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "no usable AWS credentials" in proc.stderr and "AWS_ACCESS_KEY_ID" in proc.stderr
    assert time.monotonic() - started < 30  # no retry delays


@pytest.mark.parametrize(("code", "status", "kind"), [
    ("InvalidAccessKeyId", 403, "credentials"), ("SignatureDoesNotMatch", 403, "credentials"),
    ("AccessDenied", 403, "credentials"), ("ExpiredToken", 400, "credentials"), ("InvalidToken", 400, "credentials"),
    ("SlowDown", 503, "transient"), ("InternalError", 500, "transient"), ("NoSuchBucket", 404, "permanent"),
])
def test_refused_credentials_are_permanent_and_server_trouble_transient(
    code: str, status: int, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.stub import Stubber

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-key")
    storage = S3Storage("s3://b/lake", LakeConfig(s3=S3Config(endpoint_url="http://127.0.0.1:9", region="eu-west-1")))
    with Stubber(storage.client) as stub:
        stub.add_client_error("get_object", service_error_code=code, http_status_code=status)
        with pytest.raises(LakeUnavailableError if kind == "transient" else LakeError) as caught:
            storage.read_text("x.txt")
    assert caught.value.transient is (kind == "transient")
    assert code in caught.value.message
    assert ("refused the credentials" in caught.value.message) is (kind == "credentials")
    assert ("AWS_ACCESS_KEY_ID" in (caught.value.hint or "")) is (kind == "credentials")


def test_a_heartbeat_push_that_fails_is_left_to_the_next_beat(
    bucket: str, endpoint: str, scaffold_config: Path, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    config = load_config(scaffold_config, env={"RETAIL_ETL__LAKE__ROOT": f"s3://{bucket}/lake",
                                               "RETAIL_ETL__LAKE__S3__ENDPOINT_URL": endpoint})
    storage = _storage(bucket, endpoint)
    real_call = S3Storage._call
    failed = []

    def call(self: S3Storage, what: str, fn, **kwargs):
        if threading.current_thread() is not threading.main_thread() and kwargs.get("Key", "").endswith(STATE_DB):
            failed.append(what)
            return real_call(self, what, reset, **kwargs)
        return real_call(self, what, fn, **kwargs)

    def reset(**_kwargs):
        raise ConnectionError("connection reset")

    monkeypatch.setattr(S3Storage, "_call", call)
    with storage.lock():
        runner = runner_from_config(config, {"validate": lambda _ctx: time.sleep(6 * BEAT) or StepResult()},
                                    storage=storage, heartbeat_seconds=BEAT)
        execution = runner.start()
    assert execution.succeeded and len(failed) >= 3
    assert "Traceback" not in capfd.readouterr().err
