"""Fixtures of the workflow tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """A scratch folder in memory (/dev/shm) when there is one.

    Every state change is an SQLite commit, and a commit waits for fsync: ~15 ms on the CI disk, so
    a test running dozens of executions would spend seconds syncing a database it then throws away.
    """
    shm = Path("/dev/shm")
    if not (shm.is_dir() and shm.stat().st_mode & 0o002):
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="retail-etl-test-", dir=shm))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
