"""The catalog's commit: the data files it registers equal pyiceberg's own ``add_files``, and it
refuses files the table already references or cannot read."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from pyiceberg.expressions import EqualTo
from pyiceberg.io.pyarrow import parquet_file_to_data_file

from retail_etl.errors import LakeError
from retail_etl.lake.catalog import Catalog
from retail_etl.lake.storage import LocalStorage

SCHEMA = pa.schema([("sale_date", pa.date32()), ("store_id", pa.string()), ("net_amount", pa.decimal128(18, 2))])


def _write(folder: Path, rows: str, columns: str = "sale_date, store_id, net_amount") -> list[str]:
    """Parquet files partitioned by sale_date (partition column kept), as the engines write them."""
    con = duckdb.connect()
    con.execute(f"COPY (SELECT {columns} FROM (VALUES {rows}) AS t(sale_date, store_id, net_amount)) TO '{folder}' "
                "(FORMAT parquet, PARTITION_BY (sale_date), WRITE_PARTITION_COLUMNS true)")
    return sorted(f"file://{p}" for p in folder.rglob("*.parquet"))


ROWS = ("(DATE '2024-01-01', 'S1', 10.50::DECIMAL(18,2)), (DATE '2024-01-01', NULL, -2.25::DECIMAL(18,2)), "
        "(DATE '2024-01-02', 'S2', 7.00::DECIMAL(18,2))")


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog(LocalStorage(tmp_path / "lake"), "ns")


def test_committed_files_are_described_as_pyiceberg_describes_them(catalog: Catalog, tmp_path: Path) -> None:
    table = catalog.ensure("t", SCHEMA, zone="processed", partition_by=("sale_date",))
    files = _write(tmp_path / "out", ROWS)
    assert catalog.commit(table, files, run_id="r1")

    table = catalog.load("t")
    assert table is not None
    committed = {t.file.file_path: t.file for t in table.scan().plan_files()}
    assert sorted(committed) == files
    for path in files:
        assert committed[path] == parquet_file_to_data_file(table.io, table.metadata, path)
    assert table.scan().to_arrow().num_rows == 3
    assert table.scan(row_filter=EqualTo("sale_date", "2024-01-02")).to_arrow().column("store_id").to_pylist() == ["S2"]
    assert table.current_snapshot().summary["retail-etl.run-id"] == "r1"


def test_a_file_already_referenced_is_refused(catalog: Catalog, tmp_path: Path) -> None:
    table = catalog.ensure("t", SCHEMA, zone="processed", partition_by=("sale_date",))
    files = _write(tmp_path / "out", ROWS)
    catalog.commit(table, files, run_id="r1")
    with pytest.raises(LakeError, match="already references"):
        catalog.commit(catalog.load("t"), files[:1], run_id="r2")
    assert len(catalog.load("t").snapshots()) == 1
    # Replaced in the same commit, the same path may come back (a retried step rewrites its paths).
    assert catalog.commit(catalog.load("t"), files[:1], replace=[EqualTo("sale_date", "2024-01-01")], run_id="r3")
    assert catalog.load("t").scan().to_arrow().num_rows == 3


def test_a_file_of_another_schema_is_refused(catalog: Catalog, tmp_path: Path) -> None:
    table = catalog.ensure("t", SCHEMA, zone="processed", partition_by=("sale_date",))
    files = _write(tmp_path / "out", ROWS, columns="sale_date, 1 AS store_id, net_amount")
    with pytest.raises(LakeError, match="commit to ns.t failed"):
        catalog.commit(table, files, run_id="r1")
    assert catalog.load("t").current_snapshot() is None
