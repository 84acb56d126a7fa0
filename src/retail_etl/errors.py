"""Error hierarchy.

One root, :class:`RetailEtlError`. Every error is either *transient* (worth retrying:
I/O hiccups, a busy lock) or *permanent* (retrying cannot help: bad configuration, a
broken file schema, a breached quality threshold). Retry logic checks the marker, not a
list of types. Messages say what happened, where, and what to do.
"""

from __future__ import annotations


class RetailEtlError(Exception):
    """Root of every error raised by retail-etl."""

    transient: bool = False

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
    """A dataset-level quality rule or threshold with severity ``fail`` was breached."""


class LakeError(RetailEtlError):
    """A storage or catalog operation failed."""


class LakeBusyError(TransientError):
    """Another process holds the lake (a lock or a concurrent commit)."""


class LakeUnavailableError(TransientError):
    """The lake's object store did not answer (network trouble, throttling, a server error)."""


class QueryError(PermanentError):
    """A user query could not be parsed, transpiled or executed."""
