"""The error tree's classification: OS errors by errno, AWS errors by class and code, engine errors by message."""

from __future__ import annotations

import errno
import os
import sqlite3

import pytest

from retail_etl.errors import (
    CredentialsError,
    EngineError,
    LakeError,
    LakeUnavailableError,
    StorageError,
    StorageUnavailableError,
    from_aws_error,
    from_engine_error,
    from_os_error,
    is_transient,
    translate,
)


def _os(code: int, path: str = "/lake/x") -> OSError:
    return OSError(code, os.strerror(code), path)


@pytest.mark.parametrize(
    ("code", "words", "hint"),
    [
        (errno.ENOSPC, "no space left on the device (ENOSPC)", "free space on the file system holding /lake/x"),
        (errno.EDQUOT, "disk quota exceeded (EDQUOT)", "quota"),
        (errno.EACCES, "permission denied (EACCES)", "write access to /lake/x"),
        (errno.EPERM, "operation not permitted (EPERM)", "access to /lake/x"),
        (errno.EROFS, "read-only file system (EROFS)", "writable file system"),
        (errno.ENAMETOOLONG, "file name too long for the file system (ENAMETOOLONG)", "shorten"),
        (errno.ENOTDIR, "a part of the path is a file, not a folder (ENOTDIR)", "a file stands where a folder"),
        (errno.EISDIR, "is a folder, not a file (EISDIR)", "name a file"),
        (errno.ENOENT, "no such file or folder (ENOENT)", "check that the path exists"),
    ],
)
def test_permanent_errnos_say_what_where_and_what_to_do(code: int, words: str, hint: str) -> None:
    error = from_os_error(_os(code), action="write", step="validate", table="sales_validated")
    assert isinstance(error, StorageError) and not error.transient and not is_transient(_os(code))
    assert error.message == f"cannot write /lake/x (step validate) (table sales_validated): {words}"
    assert hint in error.hint
    assert (error.errno, error.path, error.step, error.table) == (code, "/lake/x", "validate", "sales_validated")


@pytest.mark.parametrize(
    "code",
    [errno.ETIMEDOUT, errno.ECONNRESET, errno.ECONNREFUSED, errno.EAGAIN, errno.EINTR, errno.EBUSY, errno.EIO,
     errno.EHOSTUNREACH, errno.ESTALE],
)
def test_transient_errnos_are_retried(code: int) -> None:
    error = from_os_error(_os(code), action="read")
    assert isinstance(error, StorageUnavailableError) and isinstance(error, LakeUnavailableError)
    assert error.transient and is_transient(_os(code))
    assert f"({errno.errorcode[code]})" in error.message and "try again" in error.hint


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (PermissionError("no"), False),  # no errno: the class stands for EACCES
        (FileNotFoundError("gone"), False),
        (NotADirectoryError("file"), False),
        (TimeoutError("slow"), True),
        (ConnectionResetError("reset"), True),
        (OSError("AWS Error NETWORK_CONNECTION during GetObject"), True),  # pyarrow: no errno
        (PermissionError(errno.EACCES, "Permission denied", "/x"), False),
    ],
)
def test_errno_less_errors_keep_their_class_meaning(exc: OSError, transient: bool) -> None:
    assert is_transient(exc) is transient
    assert from_os_error(exc, action="open").transient is transient


def test_the_path_defaults_to_the_error_filename() -> None:
    assert from_os_error(_os(errno.EROFS, "/ro/lake"), action="create").message.startswith("cannot create /ro/lake:")


class NoCredentialsError(Exception):
    """Stands in for botocore's class: classification goes by class name, botocore being optional."""


class ClientError(Exception):
    def __init__(self, code: str, status: int) -> None:
        super().__init__(code)
        self.response = {"Error": {"Code": code, "Message": f"{code} message"},
                         "ResponseMetadata": {"HTTPStatusCode": status}}


class EndpointConnectionError(Exception):
    pass


@pytest.mark.parametrize("code", ["InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken"])
def test_refused_credentials_are_permanent(code: str) -> None:
    error = from_aws_error(ClientError(code, 403), "read s3://b/lake/catalog.db")
    assert isinstance(error, CredentialsError) and not error.transient
    assert error.message == (f"cannot read s3://b/lake/catalog.db: the object store refused the credentials ({code}): "
                             f"{code} message")
    assert "AWS_ACCESS_KEY_ID" in error.hint
    assert not is_transient(ClientError(code, 403))


def test_missing_credentials_are_permanent_and_connection_failures_transient() -> None:
    missing = from_aws_error(NoCredentialsError("Unable to locate credentials"), "read s3://b/k")
    assert isinstance(missing, CredentialsError) and not missing.transient
    assert missing.message == "cannot read s3://b/k: no usable AWS credentials: Unable to locate credentials"
    down = from_aws_error(EndpointConnectionError("could not connect"), "read s3://b/k")
    assert isinstance(down, LakeUnavailableError) and down.transient


def test_a_missing_bucket_is_permanent_and_other_codes_are_left_to_the_status() -> None:
    bucket = from_aws_error(ClientError("NoSuchBucket", 404), "list s3://nope")
    assert isinstance(bucket, LakeError) and not bucket.transient and "create the bucket" in bucket.hint
    assert from_aws_error(ClientError("SlowDown", 503), "put") is None
    assert from_aws_error(ValueError("x"), "put") is None


class IOException(Exception):
    """DuckDB's class name for I/O errors."""


class OutOfMemoryException(Exception):
    pass


def test_engine_io_errors_are_classified_by_the_errno_in_their_message() -> None:
    exc = IOException('IO Error: Could not write file "/lake/p/data_0.parquet": No space left on device')
    error = from_engine_error(exc, action="write Parquet files to", path="/lake/p", step="transform")
    assert isinstance(error, StorageError) and error.errno == errno.ENOSPC
    assert error.message == "cannot write Parquet files to /lake/p (step transform): no space left on the device (ENOSPC)"
    assert from_engine_error(IOException("IO Error: something else"), action="x") is None


def test_engine_out_of_memory_names_the_setting() -> None:
    error = from_engine_error(OutOfMemoryException("failed to allocate 4 GiB"), action="build _flagged")
    assert isinstance(error, EngineError) and not error.transient
    assert "ran out of memory while it tried to build _flagged" in error.message
    assert "engine.memory_limit" in error.hint


def test_translate_unwraps_libraries_and_leaves_bugs_alone() -> None:
    class Wrapper(Exception):
        def __init__(self, orig: BaseException) -> None:
            super().__init__("wrapped")
            self.orig = orig

    full = translate(Wrapper(sqlite3.OperationalError("database or disk is full")))
    assert isinstance(full, StorageError) and full.errno == errno.ENOSPC
    chained = ValueError("outer")
    chained.__cause__ = _os(errno.EACCES, "/lake/_state")
    assert translate(chained).message == "cannot access /lake/_state: permission denied (EACCES)"
    assert translate(KeyError("bug")) is None
    assert translate(sqlite3.OperationalError("no such table: x")) is None
