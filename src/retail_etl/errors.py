"""Error hierarchy.

One root, :class:`RetailEtlError`. Every error is either *transient* (worth retrying:
I/O hiccups, a busy lock) or *permanent* (retrying cannot help: bad configuration, a
broken file schema, a breached quality threshold). Retry logic checks the marker, not a
list of types. Messages say what happened, where, and what to do.
"""

from __future__ import annotations

import contextlib
import errno
import os


def did_you_mean(word: str, options: list[str]) -> str:
    """``"did you mean 'x'? "`` for the option closest to ``word``, or ``""``: the start of a hint."""
    import difflib

    close = difflib.get_close_matches(word, options, n=1)
    return f"did you mean {close[0]!r}? " if close else ""


class RetailEtlError(Exception):
    """Root of every error raised by retail-etl. ``step`` and ``table`` say where, when known."""

    transient: bool = False
    step: str | None = None
    table: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message}\n  hint: {hint}")


class TransientError(RetailEtlError):
    """An error that may succeed when retried."""

    transient = True


class PermanentError(RetailEtlError):
    """An error that retrying cannot fix."""


class ConfigError(PermanentError):
    """The configuration is invalid. ``location`` names the file and key; ``path`` is the key path
    below a source, for checks that do not know the file (the loader turns it into a location)."""

    def __init__(
        self, message: str, path: tuple[str, ...] = (), *, location: str | None = None, hint: str | None = None
    ) -> None:
        self.location = location
        self.path = path
        super().__init__(f"{location}: {message}" if location else message, hint=hint)


class RuleSyntaxError(ConfigError):
    """A quality rule could not be parsed."""


class SourceError(PermanentError):
    """A source file cannot be read as declared (missing columns, unreadable, wrong format)."""

    def __init__(self, message: str, *, path: str | None = None, hint: str | None = None) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message, hint=hint)


class QualityGateError(PermanentError):
    """A dataset-level quality rule or threshold with severity ``fail`` was breached. ``measured``
    holds what was measured before the gate closed (a source's validation figures), when known."""

    def __init__(self, message: str, *, hint: str | None = None, measured: object | None = None) -> None:
        self.measured = measured
        super().__init__(message, hint=hint)


class InputError(PermanentError):
    """An execution input (``run --input``, a resumed execution's record) is not one the runner understands."""


class ConservationError(PermanentError):
    """A step's rows do not add up (rows out + quarantined differ from rows in): a defect, not bad data."""


class LakeError(RetailEtlError):
    """A storage or catalog operation failed."""


class LakeBusyError(TransientError):
    """Another process holds the lake (a lock or a concurrent commit)."""


class LakeUnavailableError(TransientError):
    """The lake's object store did not answer (network trouble, throttling, a server error)."""


class QueryError(PermanentError):
    """A user query could not be parsed, transpiled or executed."""


class StorageError(LakeError, PermanentError):
    """A file operation failed in a way retrying cannot fix (no space, no permission, a bad path)."""


class StorageUnavailableError(LakeUnavailableError):
    """A file operation failed in a way that may pass (a timeout, a busy device, a reset connection)."""


class CredentialsError(LakeError):
    """Cloud credentials are missing, invalid or refused: retrying cannot help."""


class EngineError(PermanentError):
    """The engine refused or failed a statement (out of memory, an I/O error in its own files)."""


class MissingExtraError(ConfigError):
    """The configuration needs an optional dependency that is not installed."""

    def __init__(self, package: str, extra: str, needed_for: str, *, location: str | None = None) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{needed_for} needs {package}, which is not installed",
            location=location,
            hint=f"pip install 'retail-etl[{extra}]'",
        )


# -- operating-system errors, classified by errno ------------------------------------------------

_PERMANENT_ERRNOS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on the device", "free space on the file system holding {where}, or point "
                   "lake.root at a larger one"),
    errno.EDQUOT: ("disk quota exceeded", "free space or raise the quota of the user running retail-etl"),
    errno.EFBIG: ("file too large for the file system", "use a file system that allows larger files"),
    errno.EACCES: ("permission denied", "give the user running retail-etl write access to {where}, or choose "
                   "another folder"),
    errno.EPERM: ("operation not permitted", "give the user running retail-etl access to {where}"),
    errno.EROFS: ("read-only file system", "point lake.root (or the output folder) at a writable file system"),
    errno.ENAMETOOLONG: ("file name too long for the file system", "shorten the file or folder name"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "check the path; a file stands where a folder "
                    "is expected"),
    errno.EISDIR: ("is a folder, not a file", "name a file, not a folder"),
    errno.ENOENT: ("no such file or folder", "check that the path exists"),
    errno.EEXIST: ("already exists", "remove it or choose another path"),
    errno.ELOOP: ("too many symbolic links", "check the symbolic links on the path"),
    errno.EXDEV: ("crosses file systems", "keep the files on one file system"),
    errno.EINVAL: ("invalid argument", "check the path for characters the file system refuses"),
}
_TRANSIENT_ERRNOS: dict[int, str] = {
    errno.ETIMEDOUT: "timed out",
    errno.ECONNRESET: "connection reset",
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNABORTED: "connection aborted",
    errno.EPIPE: "broken pipe",
    errno.EAGAIN: "resource temporarily unavailable",
    errno.EINTR: "interrupted",
    errno.EBUSY: "device or resource busy",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ENETDOWN: "network down",
    errno.ESTALE: "stale file handle",
    errno.EIO: "input/output error",
    errno.EMFILE: "too many open files",
    errno.ENFILE: "too many open files in the system",
    errno.ENOBUFS: "no buffer space available",
}


_ERRNO_OF_CLASS: tuple[tuple[type[OSError], int], ...] = (
    (PermissionError, errno.EACCES), (FileNotFoundError, errno.ENOENT), (NotADirectoryError, errno.ENOTDIR),
    (IsADirectoryError, errno.EISDIR), (FileExistsError, errno.EEXIST),
)


def _errno_of(exc: OSError) -> int | None:
    """The errno of ``exc``, or the one its class stands for (``PermissionError("...")`` has none)."""
    if exc.errno is not None:
        return exc.errno
    return next((code for cls, code in _ERRNO_OF_CLASS if isinstance(exc, cls)), None)


def os_error_is_transient(exc: OSError) -> bool:
    """Whether retrying may help. No space, no permission, a read-only file system, a bad path
    (:data:`_PERMANENT_ERRNOS`) never; timeouts, resets, busy resources, and errors without an
    errno (network libraries raise those for connection trouble) may."""
    return _errno_of(exc) not in _PERMANENT_ERRNOS


def from_os_error(
    exc: OSError, *, action: str, path: object | None = None, step: str | None = None, table: str | None = None,
) -> StorageError | StorageUnavailableError:
    """The project's error for ``exc``: *what* (``action``, e.g. "write"), *where* (``path``, the
    step and table when known), why (the errno in words) and a hint."""
    where = str(path if path is not None else exc.filename or "?")
    context = "".join(f" ({k} {v})" for k, v in (("step", step), ("table", table)) if v)
    number = _errno_of(exc)
    code = errno.errorcode.get(number or -1)
    if number in _PERMANENT_ERRNOS:
        reason, hint = _PERMANENT_ERRNOS[number]
        error: StorageError | StorageUnavailableError = StorageError(
            f"cannot {action} {where}{context}: {reason} ({code})", hint=hint.format(where=where)
        )
    else:
        reason = _TRANSIENT_ERRNOS.get(number or -1) or exc.strerror or str(exc) or type(exc).__name__
        detail = f"{reason} ({code})" if code else reason
        error = StorageUnavailableError(f"cannot {action} {where}{context}: {detail}",
                                        hint="try again; if it persists, check the file system or network holding it")
    error.errno, error.path, error.step, error.table = number, where, step, table
    return error


# -- cloud errors: missing or refused credentials are permanent ----------------------------------

_CREDENTIAL_EXCEPTIONS = frozenset({
    "NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError", "NoAuthTokenError",
    "UnauthorizedSSOTokenError", "TokenRetrievalError", "SSOTokenLoadError", "ProfileNotFound", "NoRegionError",
})
_PERMANENT_CODES = frozenset({
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "AccessDeniedException", "ExpiredToken",
    "ExpiredTokenException", "InvalidToken", "InvalidClientTokenId", "UnrecognizedClientException",
    "AuthorizationHeaderMalformed", "AllAccessDisabled", "AccountProblem", "NoSuchBucket", "InvalidBucketName",
    "AuthFailure", "MissingAuthenticationToken", "TokenRefreshRequired",
})
_TRANSIENT_EXCEPTIONS = frozenset({
    "EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError",
    "ProxyConnectionError",
})
_CREDENTIALS_HINT = (
    "provide AWS credentials allowed to use the bucket: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    " (plus AWS_SESSION_TOKEN for temporary ones), AWS_PROFILE naming a profile of ~/.aws/credentials,"
    " or an instance role; `aws sts get-caller-identity` shows which identity is used"
)


def from_aws_error(exc: BaseException, action: str) -> LakeError | None:
    """The project's error for a botocore exception whose class or error code settles the matter:
    missing, invalid or refused credentials (and a missing bucket) are permanent, connection
    failures transient. None when neither applies (the caller classifies by HTTP status)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & _CREDENTIAL_EXCEPTIONS:
        return CredentialsError(f"cannot {action}: no usable AWS credentials: {exc}", hint=_CREDENTIALS_HINT)
    if names & _TRANSIENT_EXCEPTIONS:
        return LakeUnavailableError(f"cannot {action}: {exc}", hint="check the network and lake.s3.endpoint_url")
    response = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    if code in _PERMANENT_CODES:
        detail = response["Error"].get("Message", exc)
        if "Bucket" in code:
            return LakeError(f"cannot {action}: {code}: {detail}", hint="create the bucket or fix lake.root")
        return CredentialsError(f"cannot {action}: the object store refused the credentials ({code}): {detail}",
                                hint=_CREDENTIALS_HINT)
    return None


def is_transient(exc: BaseException) -> bool:
    """Whether retrying may help: the marker of a retail-etl error, the errno of an OS error
    (:func:`os_error_is_transient`), SQLite's "database is locked"; anything else is permanent."""
    import sqlite3

    if isinstance(exc, RetailEtlError):
        return exc.transient
    if isinstance(exc, OSError):
        return os_error_is_transient(exc)
    if isinstance(exc, sqlite3.OperationalError):
        return "locked" in str(exc).lower()
    aws = from_aws_error(exc, "call AWS")
    return aws is not None and aws.transient


# -- engine errors ---------------------------------------------------------------------------------


def _errno_in(text: str) -> int | None:
    """The errno whose message (e.g. "No space left on device") appears in an engine's error text."""
    lowered = text.lower()
    for code in (*_PERMANENT_ERRNOS, *_TRANSIENT_ERRNOS):
        if os.strerror(code).lower() in lowered:
            return code
    return None


def from_engine_error(
    exc: BaseException, *, action: str, path: object | None = None, step: str | None = None,
    table: str | None = None,
) -> RetailEtlError | None:
    """The project's error for a DuckDB exception that is not a bug in our SQL: I/O failures (by
    the errno named in the message) and running out of memory; None for anything else."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "OutOfMemoryException" in names:
        where = "".join(f" ({k} {v})" for k, v in (("step", step), ("table", table)) if v)
        error = EngineError(f"the engine ran out of memory while it tried to {action}{where}: {exc}",
                            hint="raise engine.memory_limit, lower engine.threads, or free memory")
        error.step, error.table = step, table
        return error
    if "IOException" in names or "PermissionException" in names:
        code = _errno_in(str(exc))
        if code is not None:
            return from_os_error(OSError(code, os.strerror(code)), action=action, path=path, step=step, table=table)
    return None


def note_step(exc: BaseException, step: str) -> None:
    """Record on ``exc`` the workflow step it failed (unless an adapter already did)."""
    if getattr(exc, "step", None) is None:
        with contextlib.suppress(AttributeError):  # exceptions with __slots__ take no attributes
            exc.step = step  # type: ignore[attr-defined]


def translate(exc: BaseException, _depth: int = 0) -> RetailEtlError | None:
    """The project's error for an exception raised outside an adapter that translated it: OS
    errors by errno, SQLite's disk and permission errors, engine I/O and memory errors, AWS
    credential errors; None when it is not an anticipated failure."""
    if isinstance(exc, RetailEtlError):
        return exc
    known = _translate(exc, _depth)
    if known is not None and known.step is None:
        known.step = getattr(exc, "step", None)
    return known


def _translate(exc: BaseException, _depth: int) -> RetailEtlError | None:
    import sqlite3

    if isinstance(exc, OSError):
        return from_os_error(exc, action="access", path=exc.filename)
    if isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError):
        text = str(exc).lower()
        for words, code in (("disk is full", errno.ENOSPC), ("readonly", errno.EROFS),
                            ("unable to open", errno.EACCES), ("locked", errno.EBUSY)):
            if words in text:
                return from_os_error(OSError(code, os.strerror(code)), action="write the database in",
                                     path="the lake's _state or catalog.db")
        return None
    known = from_engine_error(exc, action="run a statement") or from_aws_error(exc, "call AWS")
    if known is None:
        # Libraries wrap the error that matters: SQLAlchemy keeps it in ``orig``, others chain it.
        inner = getattr(exc, "orig", None) or exc.__cause__
        if isinstance(inner, BaseException) and inner is not exc and _depth < 5:
            return translate(inner, _depth + 1)
    return known
