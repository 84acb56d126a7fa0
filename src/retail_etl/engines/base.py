"""What the jobs need from an engine: named relations built from SQL, reads, writes, CSV loading.

Jobs write their SQL once, in the DuckDB dialect; an engine runs it as it is (DuckDB) or
transpiled (Spark, see :mod:`retail_etl.engines.sql`). Relation names are plain
identifiers, except catalog tables, whose SQL names :meth:`Engine.register_catalog_tables`
returns. Jobs hand relations to each other as arguments; a relation a job creates gets a name
from :meth:`Engine.temp_name`, unique in the session, so no job relies on another's names.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.expressions import AlwaysTrue, BooleanExpression

from retail_etl.config.model import CsvOptions
from retail_etl.lake.catalog import Catalog
from retail_etl.sources.csv_reader import ReadResult

#: An empty rejects relation, for :meth:`Engine.table`: what :meth:`Engine.load_csv` appends to.
EMPTY_REJECTS = (
    "SELECT CAST(NULL AS VARCHAR) AS _source_file, CAST(NULL AS BIGINT) AS _source_line, "
    "CAST(NULL AS VARCHAR) AS raw_line, CAST(NULL AS VARCHAR) AS reason WHERE false"
)


class Engine(ABC):
    """A session of one engine; ``close()`` releases what it holds (not a shared cluster)."""

    def temp_name(self, prefix: str) -> str:
        """A relation name not used before in this session: ``_<prefix>_<n>``."""
        count = getattr(self, "_temp_names", 0) + 1
        self._temp_names = count
        return f"_{prefix}_{count}"

    @abstractmethod
    def table(self, name: str, sql: str) -> None:
        """Materialise the result of ``sql`` as relation ``name`` (replacing it): computed once."""

    @abstractmethod
    def view(self, name: str, sql: str) -> None:
        """Name the query ``sql`` (replacing ``name``): evaluated when used."""

    def drop(self, name: str) -> None:
        """Let go of relation ``name`` once nothing will read it again.

        Only frees memory, so by default nothing happens: an engine that evaluates lazily
        (Spark) may still need it to compute relations built from it.
        """

    @abstractmethod
    def fetch_rows(self, sql: str) -> list[tuple]:
        """All rows of ``sql`` as tuples."""

    def fetch_row(self, sql: str) -> tuple:
        """The first row of ``sql``."""
        return self.fetch_rows(sql)[0]

    @abstractmethod
    def columns(self, name: str) -> list[str]:
        """Column names of relation ``name``, in order."""

    @abstractmethod
    def schema(self, sql: str) -> pa.Schema:
        """The Arrow schema of ``sql``'s result (every field nullable)."""

    @abstractmethod
    def read_parquet_view(self, name: str, files: Sequence[str]) -> None:
        """A view ``name`` over Parquet ``files`` (at least one), columns as stored in them."""

    @abstractmethod
    def write_parquet(self, sql: str, out_dir: Path, partition_by: Sequence[str] = ()) -> list[str]:
        """Write ``sql``'s rows as Parquet under ``out_dir``; returns the files, none empty.

        Partition columns stay inside the files, and each file holds one value of each, so
        pyiceberg's ``add_files`` can read the partition from the file's statistics.
        """

    @abstractmethod
    def load_csv(self, path: Path, opts: CsvOptions, *, table: str, rejects_table: str, source_file: str) -> ReadResult:
        """Load a CSV file as :func:`retail_etl.sources.csv_reader.load_csv` defines it.

        ``table`` (replaced) gets ``_source_file, _source_line`` and one text column per CSV
        column; unreadable records are appended to ``rejects_table``, which must exist
        (made from :data:`EMPTY_REJECTS`).
        """

    @abstractmethod
    def register_catalog_tables(
        self, catalog: Catalog, reads: Mapping[str, BooleanExpression] | None = None
    ) -> dict[str, str]:
        """Expose catalog tables (current snapshots); returns table name -> SQL relation.

        ``reads`` names the tables to expose (default: all of them), each with a filter on the
        rows that will be read: files that cannot hold such rows are left out. The relation
        keeps every row of the files it reads, so queries must still filter.
        """

    @abstractmethod
    def close(self) -> None: ...


def catalog_reads(catalog: Catalog, reads: Mapping[str, BooleanExpression] | None) -> dict[str, BooleanExpression]:
    """``reads`` as :meth:`Engine.register_catalog_tables` takes it: by default every table, every row."""
    return dict(reads) if reads is not None else dict.fromkeys(catalog.tables(), AlwaysTrue())


def parquet_rows(path: str) -> int:
    return pq.ParquetFile(path).metadata.num_rows
