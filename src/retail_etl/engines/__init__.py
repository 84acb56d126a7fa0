"""Engines the jobs run on: DuckDB (default, in-process) or Spark (extra ``spark``)."""

from __future__ import annotations

from pathlib import Path

from retail_etl.config.model import Config
from retail_etl.engines.base import Engine


def create(config: Config, tmp_dir: Path) -> Engine:
    """A session of the configured engine; ``tmp_dir`` is DuckDB's spill space (Spark has spark.local.dir)."""
    if config.engine.name == "spark":
        from retail_etl.engines.spark import SparkEngine

        return SparkEngine.start(config.engine)
    from retail_etl.engines.duckdb import DuckDBEngine, connect

    return DuckDBEngine(connect(config.engine, tmp_dir))
