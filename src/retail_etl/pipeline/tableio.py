"""The one way a step touches the catalog: write files, stage them, then one Iceberg commit per table.

A :class:`StepIO` is a step's scratch space (an engine session, the files it wrote, the commits it
staged), in the spirit of Dagster's I/O managers: the step computes relations, this layer decides
where their rows go. A step that fails before :meth:`StepIO.commit` leaves nothing referenced: on
error the files it wrote are deleted and the lake is read back as published.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.expressions import BooleanExpression

from retail_etl import engines
from retail_etl.engines.base import Engine, parquet_rows
from retail_etl.lake.lake import Lake

PROCESSED, ANALYTICS = "processed", "analytics"

#: How a step reports progress (one line at a time).
Say = Callable[[str], None]


def quiet(_message: str) -> None:
    """Progress reported to no one."""


class StepIO:
    """One step's scratch space: an engine session, written files, staged commits.

    ``reads`` names the committed tables the step reads, each with a filter on the rows it
    needs (see :meth:`Engine.register_catalog_tables`); other tables are not planned.
    """

    def __init__(self, lake: Lake, run_id: str, name: str, reads: dict[str, BooleanExpression]) -> None:
        self.lake = lake
        self.catalog = lake.catalog
        self.run_id = run_id
        self.name = name
        self.reads = reads
        self.tmp = lake.storage.work / f"{run_id}-{name}"
        self.written: dict[str, str] = {}  # table -> URI of the folder this step writes it to, until committed
        self.local_files: dict[tuple[str, str], list[str]] = {}  # (table, part) -> the files the engine wrote
        self.staged: dict[str, tuple[list[str], list[BooleanExpression]]] = {}
        self._engine: Engine | None = None
        self.tables: dict[str, str] = {}

    @property
    def engine(self) -> Engine:
        assert self._engine is not None, "use the step's I/O as a context manager"
        return self._engine

    def __enter__(self) -> StepIO:
        self._engine = engines.create(self.lake.config, self.tmp / "spill")
        self.tables = self._engine.register_catalog_tables(self.catalog, self.reads)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            # Back to the lake as published (a change whose publication failed is undone), and
            # delete the files no published commit refers to.
            self.lake.storage.refresh()
            self.catalog.reset()
            for folder in self.written.values():
                self.lake.storage.delete_tree(folder)
        self.engine.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def relation(self, table: str) -> str | None:
        """The committed table as a relation (as it was when the step started), if it exists."""
        return self.tables.get(table)

    def _folder(self, table: str, target) -> str:
        folder = f"{self.catalog.data_dir(target)}/run_id={self.run_id}/{self.name}"
        self.written[table] = folder
        return folder

    def write(self, table: str, query: str, zone: str, part: str, *, partition_by: tuple[str, ...] = (),
              layout: tuple[str, ...] = ()) -> list[str]:
        """Create/evolve ``table`` for ``query``'s schema and write its rows under a run folder."""
        target = self.catalog.ensure(table, self.engine.schema(query), zone=zone, partition_by=partition_by)
        folder = self._folder(table, target)
        local = self.lake.storage.staging(folder, self.tmp / "out") / part
        self.local_files[(table, part)] = self.engine.write_parquet(query, local, layout or partition_by)
        return self.lake.storage.publish(local, f"{folder}/{part}")

    def write_rows(self, table: str, rows: pa.Table, zone: str, part: str) -> list[str]:
        """Create/evolve ``table`` for ``rows``' schema and write them as one Parquet file (none if empty)."""
        if rows.num_rows == 0:
            return []
        target = self.catalog.ensure(table, rows.schema, zone=zone)
        folder = self._folder(table, target)
        local = self.lake.storage.staging(folder, self.tmp / "out") / part
        local.mkdir(parents=True, exist_ok=True)
        path = local / f"{uuid.uuid4().hex}.parquet"  # a retry of the step never overwrites a committed file
        pq.write_table(rows, path)
        self.local_files[(table, part)] = [str(path)]
        # On a local lake the folder may hold the files of an earlier attempt of this run: only this one is new.
        return [uri for uri in self.lake.storage.publish(local, f"{folder}/{part}") if uri.endswith(path.name)]

    def rows_written(self, table: str, part: str) -> int:
        """Rows of the files :meth:`write` wrote for ``table`` and ``part`` (read from their footers)."""
        return sum(parquet_rows(f) for f in self.local_files[(table, part)])

    def stage(self, table: str, files: Sequence[str], replace: Iterable[BooleanExpression]) -> None:
        """Add ``files`` to ``table``'s commit, which also deletes the rows matching each of ``replace``."""
        old_files, old_replace = self.staged.get(table, ([], []))
        self.staged[table] = ([*old_files, *files], [*old_replace, *replace])

    def commit(self) -> None:
        """One Iceberg commit per staged table, in the order they were staged."""
        for table, (files, replace) in self.staged.items():
            self.catalog.commit(self.catalog.load(table), files, replace=replace, run_id=self.run_id)
            self.written.pop(table, None)  # referenced now: kept even if a later commit fails
