"""One SparkSession for the whole test session (starting one takes seconds)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from retail_etl.config.model import EngineConfig, SparkConfig

pytest.importorskip("pyspark", reason="the spark extra is not installed")

SPARK = EngineConfig(
    name="spark",
    spark=SparkConfig(
        master="local[2]",
        conf={
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.ui.enabled": "false",
            # Tiny data: compiling generated code and re-planning cost more than they save.
            "spark.sql.codegen.wholeStage": "false",
            "spark.sql.adaptive.enabled": "false",
        },
    ),
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/spark/" in item.nodeid:
            item.add_marker(pytest.mark.spark)


@pytest.fixture(scope="session")
def spark_engine() -> Iterator[EngineConfig]:
    """The engine configuration of the tests; the session it starts is the one the pipeline joins."""
    from retail_etl.engines.spark import SparkEngine

    session = SparkEngine.start(SPARK).spark
    session.sparkContext.setLogLevel("ERROR")
    yield SPARK
    session.stop()
