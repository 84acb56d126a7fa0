"""Where the lake's files live: a local folder, or a prefix in S3 (``s3://bucket/prefix``).

Everything else addresses lake files by their path relative to the lake root and asks the
storage for the rest: a URI for Iceberg, a local copy to read, an upload, the lock.

On S3 nothing but the object store holds state:

- the lake's two SQLite databases (``catalog.db``, ``_state/state.db``) are worked on in a local
  copy, pulled when the lake is opened and again once the lake lock is held, and pushed (one
  atomic PUT) after every change. Pushes go one at a time, each a consistent snapshot taken with
  SQLite's backup API and uploaded before the next snapshot is taken, whichever thread asks (the
  workflow's heartbeat pushes too). The object store therefore sees the changes in the order they
  were made, which is what crash safety rests on (see ``lake/state.py``): a run killed between a
  change and its push has simply not made that change yet;
- the lock is an object created with a conditional PUT (``If-None-Match: *``), so two machines
  cannot both take it. Its holder rewrites it every ``lake.s3.lock_heartbeat_seconds`` (each
  rewrite conditional on it still being the holder's, ``If-Match``); a lock not rewritten for
  ``lake.s3.lock_stale_seconds`` by the object store's own clock (so clock skew between hosts
  does not matter), or held by a dead process of this host, is taken over with ``If-Match`` on
  the stale lock's ETag, so of two takers only one wins. A run whose lock was taken over (its
  heartbeats did not reach the store for that long) publishes nothing more;
- Parquet files are written locally by the engine and uploaded before the Iceberg commit that
  references them; DuckDB reads them through pyarrow's S3 client (an fsspec filesystem), so no
  DuckDB extension has to be downloaded.

Credentials come from the usual AWS sources (environment, shared config and credentials files,
instance roles); the configuration only names the bucket, endpoint and region.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import hashlib
import json
import os
import secrets
import shutil
import socket
import sqlite3
import tempfile
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retail_etl.errors import (
    ConfigError, LakeBusyError, LakeError, LakeUnavailableError, SourceError, from_aws_error, from_os_error,
)

if TYPE_CHECKING:
    import duckdb

    from retail_etl.config.model import Config, LakeConfig

#: The lake's SQLite databases, relative to the lake root.
CATALOG_DB = "catalog.db"
STATE_DB = "_state/state.db"
#: The lake lock's object on S3 (a lock file locally).
LOCK = "_state/lock"
#: Execution logs, ``<execution_id>.jsonl``.
LOGS_DIR = "_logs"
_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class Storage(ABC):
    """The lake root's files, addressed by paths relative to the root (``raw/sales/x.csv``)."""

    #: Local folder for scratch work (engine spill, files waiting for upload, local copies).
    work: Path

    @abstractmethod
    def uri(self, rel: str = "") -> str:
        """The absolute URI of ``rel`` (``file:///...`` or ``s3://...``), as Iceberg records it."""

    @abstractmethod
    def db_path(self, rel: str) -> Path:
        """The local file of the SQLite database ``rel`` (to be :meth:`push`-ed after each change)."""

    @abstractmethod
    def local_dir(self, rel: str) -> Path:
        """A local folder for the files of lake folder ``rel`` (each :meth:`push`-ed once written)."""

    def push(self, rel: str) -> None:
        """Publish the local copy of ``rel`` (a database, or a file of a :meth:`local_dir`)."""

    def refresh(self) -> None:
        """Re-read the lake's databases (once the lock is held, and after a failed step)."""

    @abstractmethod
    def read_text(self, rel: str) -> str | None:
        """The content of a small text file, or None if it does not exist."""

    @abstractmethod
    def append_line(self, rel: str, line: str) -> None:
        """Append one line (ending in a newline) durably to a small text file."""

    @abstractmethod
    def sha256(self, rel: str) -> str | None:
        """The SHA-256 of a file's content, or None if it does not exist."""

    @abstractmethod
    def put_file(self, source: Path, rel: str, sha256: str, mode: int = 0o444) -> None:
        """Store a copy of ``source`` at ``rel`` if its content hashes to ``sha256``, with permission
        bits ``mode`` where the storage has them (a local folder)."""

    @abstractmethod
    def local_copy(self, rel: str) -> Path:
        """A local path holding the file ``rel`` (the file itself when the lake is local)."""

    @abstractmethod
    def staging(self, uri: str, scratch: Path) -> Path:
        """Where an engine writes the files meant for folder ``uri``: the folder itself on a local
        lake, a folder in ``scratch`` otherwise (see :meth:`publish`)."""

    @abstractmethod
    def publish(self, local_dir: Path, uri: str) -> list[str]:
        """Place the Parquet files under ``local_dir`` at ``uri`` (same relative paths); returns their URIs."""

    @abstractmethod
    def delete_tree(self, uri: str) -> None:
        """Remove every file under ``uri`` (best effort: leftovers are unreferenced)."""

    @abstractmethod
    def lock(self, *, wait: bool = False) -> contextlib.AbstractContextManager[None]:
        """Hold the lake's exclusive lock; :class:`LakeBusyError` if it is taken (unless ``wait``)."""

    def iceberg_properties(self) -> dict[str, str]:
        """pyiceberg FileIO settings for this storage."""
        return {}

    def attach(self, con: duckdb.DuckDBPyConnection) -> None:
        """Let DuckDB read this storage's URIs."""

    def path_of(self, uri: str) -> str:
        """What an engine reads for a file URI (local path, or the URI)."""
        return uri


def open_storage(config: Config) -> Storage:
    """The storage of the configuration's lake root (a folder, or ``s3://bucket/prefix``)."""
    root = config.lake_root()
    if root.startswith("s3://"):
        return S3Storage(root, config.lake)
    if "://" in root:
        raise ConfigError(f"unsupported lake root {root!r}", path=("lake", "root"),
                          hint="use a folder or s3://bucket/prefix")
    return LocalStorage(Path(root))


# -- a local folder ---------------------------------------------------------------------------


class LocalStorage(Storage):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.work = root / "_tmp"

    def uri(self, rel: str = "") -> str:
        # Not Path.as_uri(): pyiceberg does not percent-decode, and hive folders contain '='.
        return f"file://{(self.root / rel).resolve()}"

    def path_of(self, uri: str) -> str:
        return uri.removeprefix("file://")

    def db_path(self, rel: str) -> Path:
        path = self.root / rel
        with _os_errors("create the folder of", path):
            path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def local_dir(self, rel: str) -> Path:
        return self.root / rel

    def read_text(self, rel: str) -> str | None:
        path = self.root / rel
        with _os_errors("read", path):
            return path.read_text(encoding="utf-8") if path.exists() else None

    def append_line(self, rel: str, line: str) -> None:
        path = self.root / rel
        with _os_errors("append to", path):
            self._append_line(path, line)

    def _append_line(self, path: Path, line: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab+") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size:
                fh.seek(size - 1)
                if fh.read(1) != b"\n":  # drop the tail of an append cut short by a crash
                    fh.seek(0)
                    fh.truncate(fh.read().rfind(b"\n") + 1)
            fh.write(line.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())

    def sha256(self, rel: str) -> str | None:
        path = self.root / rel
        return file_sha256(path) if path.exists() else None

    def put_file(self, source: Path, rel: str, sha256: str, mode: int = 0o444) -> None:
        target = self.root / rel
        tmp = target.with_name(f".tmp-{os.getpid()}-{sha256[:16]}")  # short: the name may be near the limit
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp.unlink(missing_ok=True)
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600))  # private until it gets its final mode
            shutil.copyfile(source, tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            if file_sha256(tmp) != sha256:
                raise _changed(source)
            os.chmod(tmp, mode)
            os.replace(tmp, target)
        except OSError as exc:
            raise from_os_error(exc, action="copy into the lake", path=exc.filename or target) from exc
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)

    def local_copy(self, rel: str) -> Path:
        return self.root / rel

    def staging(self, uri: str, scratch: Path) -> Path:
        return Path(self.path_of(uri))

    def publish(self, local_dir: Path, uri: str) -> list[str]:
        # The engine wrote straight into the table's folder (see :meth:`staging`).
        return sorted(f"file://{p}" for p in local_dir.rglob("*.parquet"))

    def delete_tree(self, uri: str) -> None:
        folder = Path(self.path_of(uri))
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            folder.parent.rmdir()  # the run's folder, if no other step wrote to it

    @contextlib.contextmanager
    def lock(self, *, wait: bool = False) -> Iterator[None]:
        """An OS file lock: the kernel releases it when its process dies, so a killed run never
        leaves the lake locked."""
        import fcntl

        path = self.db_path("_state/lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
                raise _busy(holder) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
            yield
        finally:
            os.close(fd)


@contextlib.contextmanager
def _os_errors(action: str, path: Path) -> Iterator[None]:
    """OS errors of a local lake operation as the project's errors (see :func:`errors.from_os_error`)."""
    try:
        yield
    except OSError as exc:
        raise from_os_error(exc, action=action, path=exc.filename or path) from exc


def _busy(holder: str) -> LakeBusyError:
    return LakeBusyError(f"the lake is in use by {holder}",
                         hint="wait for the other run to finish, or pass --wait to queue behind it")


def _changed(source: Path) -> SourceError:
    return SourceError("file changed while it was being ingested; ingest it again", path=str(source))


# -- S3 ---------------------------------------------------------------------------------------


class S3Storage(Storage):
    """A lake under ``s3://bucket/prefix``: objects through boto3, Parquet reads through pyarrow."""

    #: How often a waiting run asks for the lock again.
    POLL_SECONDS = 1.0

    def __init__(self, root: str, config: LakeConfig) -> None:
        bucket, _, prefix = root.removeprefix("s3://").partition("/")
        if not bucket:
            raise ConfigError(f"no bucket in lake root {root!r}", path=("lake", "root"),
                              hint="write it as s3://bucket/prefix")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.endpoint = config.s3.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get(
            "AWS_ENDPOINT_URL")
        self.region = config.s3.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        self.heartbeat_seconds = config.s3.lock_heartbeat_seconds
        self.stale_seconds = config.s3.lock_stale_seconds
        self.work = Path(tempfile.mkdtemp(prefix="retail-etl-s3-"))
        weakref.finalize(self, shutil.rmtree, self.work, True)
        self._pulled: dict[str, str | None] = {}  # database -> ETag of the copy pulled
        # One transfer of a database at a time (pull, or snapshot and PUT), whichever thread asks:
        # uploads land in the order their snapshots were taken.
        self._transfers = threading.Lock()
        self._beat: _LockBeat | None = None  # while this storage holds the lake lock
        self._client: Any = None
        self._fs: Any = None

    # plumbing

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                import boto3
            except ImportError:  # pragma: no cover - depends on the installed extras
                raise ConfigError("an s3:// lake needs boto3", path=("lake", "root"),
                                  hint="pip install 'retail-etl[aws]'") from None
            try:
                self._client = boto3.client("s3", endpoint_url=self.endpoint, region_name=self.region)
            except Exception as exc:  # a named profile that does not exist, a malformed config file
                raise _s3_error(exc, f"connect to s3://{self.bucket}") from exc
        return self._client

    @property
    def arrow_fs(self) -> Any:
        if self._fs is None:
            from pyarrow import fs

            kwargs: dict[str, Any] = {"region": self.region or "us-east-1"}
            if self.endpoint:
                scheme, _, host = self.endpoint.partition("://")
                kwargs.update(endpoint_override=host, scheme=scheme)
            self._fs = fs.S3FileSystem(**kwargs)
        return self._fs

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}".strip("/") if self.prefix else rel

    def _key_of(self, uri: str) -> str:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        if bucket != self.bucket:
            raise LakeError(f"{uri} is outside the lake s3://{self.bucket}/{self.prefix}")
        return key

    def _get(self, key: str) -> dict | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)
        except self.client.exceptions.NoSuchKey:
            return None
        except Exception as exc:
            raise _s3_error(exc, f"read s3://{self.bucket}/{key}") from exc

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        try:
            return fn(Bucket=self.bucket, **kwargs)
        except Exception as exc:
            raise _s3_error(exc, what) from exc

    # Storage

    def uri(self, rel: str = "") -> str:
        return f"s3://{self.bucket}/{self.key(rel)}".rstrip("/")

    def db_path(self, rel: str) -> Path:
        if rel not in self._pulled:
            self._pull(rel)
        return self.work / "db" / rel

    def _pull(self, rel: str) -> None:
        local = self.work / "db" / rel
        local.parent.mkdir(parents=True, exist_ok=True)
        with self._transfers:
            obj = self._get(self.key(rel))
            if obj is None:
                local.unlink(missing_ok=True)
                self._pulled[rel] = None
                return
            if self._pulled.get(rel) == obj["ETag"] and local.exists():
                obj["Body"].close()
                return
            tmp = local.with_name(local.name + ".pull")
            with open(tmp, "wb") as fh:
                for chunk in obj["Body"].iter_chunks(_CHUNK):
                    fh.write(chunk)
            os.replace(tmp, local)
            self._pulled[rel] = obj["ETag"]

    def local_dir(self, rel: str) -> Path:
        return self.work / rel

    def refresh(self) -> None:
        for rel in list(self._pulled):
            self._pull(rel)

    def push(self, rel: str) -> None:
        """Publish ``rel``: a database as a consistent snapshot, uploads one at a time in the order
        their snapshots were taken; refused once the lake lock this storage held was taken over."""
        database = rel in self._pulled
        local = self.work / "db" / rel if database else self.work / rel
        with self._transfers:
            if not local.exists():
                return
            if self._beat is not None and self._beat.lost is not None:
                raise _taken_over(self.uri(LOCK), self._beat.lost)
            source = _snapshot(local, local.with_name(local.name + ".push")) if database else local
            try:
                with open(source, "rb") as fh:
                    out = self._call(f"write {self.uri(rel)}", self.client.put_object, Key=self.key(rel), Body=fh)
            except BaseException:
                if database:
                    self._pulled[rel] = ""  # the local copy is ahead of the lake: the next refresh replaces it
                raise
            finally:
                if database:
                    source.unlink(missing_ok=True)
            if database:
                self._pulled[rel] = out["ETag"]

    def read_text(self, rel: str) -> str | None:
        obj = self._get(self.key(rel))
        return None if obj is None else obj["Body"].read().decode("utf-8")

    def append_line(self, rel: str, line: str) -> None:
        # Objects cannot be appended to: rewrite it (small files only; the lock serialises writers).
        old = self.read_text(rel) or ""
        self._call(f"write {self.uri(rel)}", self.client.put_object, Key=self.key(rel),
                   Body=(old + line).encode("utf-8"))

    def sha256(self, rel: str) -> str | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key(rel))
        except Exception as exc:
            if _status(exc) == 404:
                return None
            raise _s3_error(exc, f"read {self.uri(rel)}") from exc
        return head.get("Metadata", {}).get("sha256") or self._hash_object(rel)

    def _hash_object(self, rel: str) -> str:
        obj = self._get(self.key(rel))
        digest = hashlib.sha256()
        for chunk in obj["Body"].iter_chunks(_CHUNK) if obj else ():
            digest.update(chunk)
        return digest.hexdigest()

    def put_file(self, source: Path, rel: str, sha256: str, mode: int = 0o444) -> None:
        # Objects have no permission bits: ``mode`` does not apply. Upload from a local copy
        # hashed first, so what lands is what was checked.
        staged = self.work / "upload" / f"{os.getpid()}-{sha256[:16]}"  # short: the name may be near the limit
        staged.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, staged)
        try:
            if file_sha256(staged) != sha256:
                raise _changed(source)
            try:
                self.client.upload_file(str(staged), self.bucket, self.key(rel),
                                        ExtraArgs={"Metadata": {"sha256": sha256}})
            except Exception as exc:
                raise _s3_error(exc, f"upload {source} to {self.uri(rel)}") from exc
        finally:
            staged.unlink(missing_ok=True)

    def local_copy(self, rel: str) -> Path:
        local = self.work / "files" / rel
        if not local.exists():
            local.parent.mkdir(parents=True, exist_ok=True)
            tmp = local.with_name(local.name + ".part")
            try:
                self.client.download_file(self.bucket, self.key(rel), str(tmp))
            except Exception as exc:
                raise _s3_error(exc, f"download {self.uri(rel)}") from exc
            os.replace(tmp, local)
        return local

    def staging(self, uri: str, scratch: Path) -> Path:
        return scratch / hashlib.sha1(uri.encode()).hexdigest()[:12]

    def publish(self, local_dir: Path, uri: str) -> list[str]:
        out = []
        for path in sorted(local_dir.rglob("*.parquet")):
            target = f"{uri.rstrip('/')}/{path.relative_to(local_dir).as_posix()}"
            try:
                self.client.upload_file(str(path), self.bucket, self._key_of(target))
            except Exception as exc:
                raise _s3_error(exc, f"upload {target}") from exc
            out.append(target)
        return out

    def delete_tree(self, uri: str) -> None:
        prefix = self._key_of(uri).rstrip("/") + "/"
        with contextlib.suppress(Exception):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if keys:
                    self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})

    @contextlib.contextmanager
    def lock(self, *, wait: bool = False) -> Iterator[None]:
        """The lock object ``_state/lock``, kept alive by a heartbeat thread while held (see the module)."""
        key = self.key(LOCK)
        me = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time(),
              "token": secrets.token_hex(8)}
        etag = self._take_lock(key, me, wait)
        beat = _LockBeat(self, key, me, etag)
        self._beat = beat
        beat.start()
        try:
            self.refresh()
            yield
        finally:
            beat.stop()  # no rewrite may land after the release below
            self._beat = None
            if beat.lost is None:
                with contextlib.suppress(Exception):
                    self.client.delete_object(Bucket=self.bucket, Key=key)

    def _take_lock(self, key: str, me: dict, wait: bool) -> str:
        """The ETag of the lock object once it is ours: created, or taken over from a stale holder."""
        while True:
            etag = self._put_lock(key, me, IfNoneMatch="*")
            if etag is not None:
                return etag
            holder = self._get(key)
            if holder is None:  # released in between
                continue
            info, age = _holder(holder)
            if _abandoned(info, age, self.stale_seconds):
                # Conditional on the stale version: of two takers, only the first rewrite matches.
                etag = self._put_lock(key, me, IfMatch=holder["ETag"])
                if etag is not None:
                    return etag
                continue
            if not wait:
                raise _busy(_describe(info, age))
            time.sleep(self.POLL_SECONDS)

    def _put_lock(self, key: str, body: dict, **condition: str) -> str | None:
        """Write the lock object if ``condition`` holds; its new ETag, or None if the condition failed."""
        try:
            out = self.client.put_object(Bucket=self.bucket, Key=key, Body=json.dumps(body).encode(), **condition)
        except Exception as exc:
            # 412: the condition failed; 409: a concurrent conditional write won; NoSuchKey: If-Match
            # on an object deleted in between.
            if _status(exc) in (409, 412) or _code(exc) == "NoSuchKey":
                return None
            raise _s3_error(exc, f"take the lock {self.uri(LOCK)}") from exc
        return out["ETag"]

    def iceberg_properties(self) -> dict[str, str]:
        props = {}
        if self.endpoint:
            props["s3.endpoint"] = self.endpoint
        if self.region:
            props["s3.region"] = self.region
        return props

    def attach(self, con: duckdb.DuckDBPyConnection) -> None:
        from fsspec.implementations.arrow import ArrowFSWrapper

        class _S3(ArrowFSWrapper):
            protocol = "s3"

        con.execute("SET autoinstall_known_extensions = false")
        con.execute("SET autoload_known_extensions = false")
        con.register_filesystem(_S3(self.arrow_fs))


class _LockBeat:
    """Rewrites the held lock object every ``heartbeat_seconds``, each time conditional on it being
    the version last written (``If-Match``). A failed condition means another run took the lock
    over: :attr:`lost` then holds the new holder's description and the beats stop. A rewrite that
    fails otherwise (network trouble) is tried again at the next beat."""

    def __init__(self, storage: S3Storage, key: str, body: dict, etag: str) -> None:
        self.storage, self.key, self.body, self.etag = storage, key, body, etag
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lake lock heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        client, bucket = self.storage.client, self.storage.bucket
        while not self._stop.wait(self.storage.heartbeat_seconds):
            body = json.dumps({**self.body, "beat": time.time()}).encode()
            try:
                self.etag = client.put_object(Bucket=bucket, Key=self.key, Body=body, IfMatch=self.etag)["ETag"]
            except Exception as exc:
                if _status(exc) == 412 or _code(exc) == "NoSuchKey":
                    self.lost = self._holder()
                    return

    def _holder(self) -> str:
        with contextlib.suppress(Exception):
            holder = self.storage._get(self.key)
            if holder is not None:
                return _describe(*_holder(holder))
        return "another run"


def _holder(obj: dict) -> tuple[dict, float]:
    """The lock object's content and its age in seconds, by the object store's clock (its ``Date``
    header against ``LastModified``: no skew between hosts, one-second resolution)."""
    try:
        info = json.loads(obj["Body"].read() or b"{}")
    except ValueError:
        info = {}
    if not isinstance(info, dict):
        info = {}
    now = dt.datetime.now(dt.UTC)
    with contextlib.suppress(KeyError, TypeError, ValueError):
        now = email.utils.parsedate_to_datetime(obj["ResponseMetadata"]["HTTPHeaders"]["date"])
    modified = obj.get("LastModified") or now
    return info, (_aware(now) - _aware(modified)).total_seconds()


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _describe(info: dict, age: float) -> str:
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')} (lock last refreshed {max(age, 0):.0f}s ago)"


def _abandoned(info: dict, age: float, stale_seconds: float) -> bool:
    """A lock not rewritten for ``stale_seconds``, or whose holder is a dead process on this host."""
    if age > stale_seconds:
        return True
    if info.get("host") != socket.gethostname():
        return False
    try:
        pid = int(info.get("pid", 0))
        if pid <= 0:
            return False
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError, TypeError, OverflowError):
        return False
    return False


def _taken_over(lock: str, holder: str) -> LakeError:
    return LakeError(
        f"the lake lock {lock} was taken over by {holder}: this run's heartbeats did not reach the"
        " object store in time, so it stops without publishing more",
        hint="check the connection to the object store (or raise lake.s3.lock_stale_seconds), then run again",
    )


def _snapshot(db: Path, target: Path) -> Path:
    """A consistent copy of the SQLite database ``db`` at ``target``, taken with SQLite's backup API
    under a read lock (a plain file copy could catch a transaction half-written)."""
    target.unlink(missing_ok=True)
    src, dst = sqlite3.connect(db, timeout=30), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    return target


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None) or {}
    return response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _code(exc: BaseException) -> str | None:
    """The S3 error code of a botocore ``ClientError`` (``NoSuchKey``, ``AccessDenied``...)."""
    return (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")


def _s3_error(exc: Exception, what: str) -> LakeError | LakeUnavailableError:
    settled = from_aws_error(exc, what)  # credentials, a missing bucket, a lost connection
    if settled is not None:
        return settled
    status = _status(exc)
    message = f"cannot {what}: {exc}"
    hint = "check the bucket, lake.s3.endpoint_url and the AWS credentials (environment or ~/.aws)"
    if status is None or status >= 500 or status == 429:
        # Network trouble and throttling pass: the workflow's retry policy handles them.
        return LakeUnavailableError(message, hint=hint)
    return LakeError(message, hint=hint)
