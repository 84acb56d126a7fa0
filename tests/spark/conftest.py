"""One SparkSession for the whole test session (starting one takes seconds)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from retail_etl.config.model import EngineConfig, SparkConfig

SPARK = EngineConfig(
    name="spark",
    spark=SparkConfig(
        master="local[2]",
        conf={
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            # Tiny data, a short-lived JVM: compiling (generated code, or the JVM's own with C2)
            # and re-planning cost more than they save.
            "spark.sql.codegen.wholeStage": "false",
            "spark.sql.adaptive.enabled": "false",
            "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        },
    ),
)


@pytest.fixture(scope="session")
def spark_engine() -> Iterator[EngineConfig]:
    """The engine configuration of the tests; the session it starts is the one the pipeline joins."""
    from retail_etl.engines.spark import SparkEngine

    session = SparkEngine.start(SPARK).spark
    session.sparkContext.setLogLevel("ERROR")
    yield SPARK
    session.stop()
