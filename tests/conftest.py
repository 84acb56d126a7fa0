"""Shared fixtures."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SCAFFOLD = Path(__file__).resolve().parents[1] / "src" / "retail_etl" / "scaffold" / "retail-etl.yaml"


@pytest.fixture
def scaffold_config(tmp_path: Path) -> Path:
    """A copy of the shipped configuration in an empty project folder."""
    target = tmp_path / "retail-etl.yaml"
    shutil.copyfile(SCAFFOLD, target)
    return target
