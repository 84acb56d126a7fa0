"""Iceberg tables through pyiceberg's SQL catalog (the SQLite file ``catalog.db`` in the lake).

Write protocol: an engine writes Parquet files (partition columns kept inside the files)
under the table's location; then ONE Iceberg transaction deletes what the batch replaces
and registers the new files with ``add_files``. Readers see the old snapshot or the new
one, never a mix. A crash before the commit leaves only unreferenced files behind.
"""

from __future__ import annotations

import urllib.parse
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import CommitFailedException, NoSuchNamespaceError, NoSuchTableError
from pyiceberg.expressions import AlwaysTrue, BooleanExpression
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import (
    _check_pyarrow_schema_compatible,
    compute_statistics_plan,
    data_file_statistics_from_parquet_metadata,
    parquet_path_to_id_mapping,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat, ManifestContent
from pyiceberg.table import Table, TableProperties, Transaction
from pyiceberg.table.metadata import TableMetadata

from retail_etl.errors import LakeBusyError, LakeError, from_os_error
from retail_etl.lake.storage import CATALOG_DB, LocalStorage, Storage

RUN_ID_PROPERTY = "retail-etl.run-id"
ZONE_PROPERTY = "retail-etl.zone"
CATALOG_NAME = "retail_etl"


@dataclass(frozen=True)
class TableInfo:
    name: str
    zone: str
    location: str
    rows: int
    files: int
    snapshots: int


class Catalog:
    """The lake's table catalog: create, commit, list and plan reads of Iceberg tables."""

    def __init__(self, storage: Storage, namespace: str) -> None:
        self.storage = storage
        self.namespace = namespace
        self._catalog: SqlCatalog | None = None

    @property
    def iceberg(self) -> SqlCatalog:
        if self._catalog is None:
            self._catalog = SqlCatalog(
                CATALOG_NAME,
                uri=f"sqlite:///{self.storage.db_path(CATALOG_DB)}",
                warehouse=self.storage.uri(),
                **self.storage.iceberg_properties(),
            )
            if (self.namespace,) not in self._catalog.list_namespaces():
                self._catalog.create_namespace(self.namespace)
                self.storage.push(CATALOG_DB)
        return self._catalog

    def reset(self) -> None:
        """Forget the open catalog (its database file has been replaced by a newer one)."""
        if self._catalog is not None:
            self._catalog.engine.dispose()
            self._catalog = None

    def identifier(self, name: str) -> str:
        return f"{self.namespace}.{name}"

    def load(self, name: str) -> Table | None:
        try:
            return self.iceberg.load_table(self.identifier(name))
        except NoSuchTableError:
            return None

    def ensure(self, name: str, schema: pa.Schema, *, zone: str, partition_by: Sequence[str] = ()) -> Table:
        """Load ``name``, creating it (in ``<lake>/<zone>/<name>``) or adding new columns as needed."""
        table = self.load(name)
        if table is None:
            location = self.storage.uri(f"{zone}/{name}")
            table = self.iceberg.create_table(
                self.identifier(name), schema=schema, location=location, properties={ZONE_PROPERTY: zone}
            )
            if partition_by:
                with table.update_spec() as spec:
                    for column in partition_by:
                        spec.add_identity(column)
                table = self.iceberg.load_table(self.identifier(name))
            self.storage.push(CATALOG_DB)
            return table
        existing = {f.name for f in table.schema().fields}
        if any(f.name not in existing for f in schema):
            with table.update_schema() as update:
                update.union_by_name(schema)
            self.storage.push(CATALOG_DB)
            table = self.iceberg.load_table(self.identifier(name))
        return table

    def data_dir(self, table: Table) -> str:
        """The URI of the table's data folder."""
        return f"{table.location().rstrip('/')}/data"

    def commit(
        self,
        table: Table,
        files: Sequence[str],
        *,
        replace: Sequence[BooleanExpression] = (),
        run_id: str,
    ) -> bool:
        """In one transaction, delete the rows matching each of ``replace`` and add ``files``.

        Several filters rather than one ``Or``: a row-level rewrite evaluates the filter on the
        rows, and an ``Or`` over a column holding NULLs would keep or drop the wrong rows.
        ``files`` are URIs (see :meth:`Storage.publish`). Returns False (and commits nothing) when
        there is nothing to delete or add.
        """
        deletes = [expr for expr in replace if self._matches(table, expr)]
        if not files and not deletes:
            return False
        props = {RUN_ID_PROPERTY: run_id}
        try:
            with table.transaction() as tx:
                for expr in deletes:
                    tx.delete(expr, snapshot_properties=props)
                if files:
                    _add_files(tx, table.io, list(files), props)
        except CommitFailedException as exc:
            raise LakeBusyError(f"commit to {table.name()} conflicted with another writer: {exc}") from exc
        except OSError as exc:
            name = ".".join(table.name())
            raise from_os_error(exc, action=f"commit to {name}: write", table=name) from exc
        except ValueError as exc:
            raise LakeError(f"commit to {'.'.join(table.name())} failed: {exc}") from exc
        self.storage.push(CATALOG_DB)
        return True

    @staticmethod
    def _matches(table: Table, expr: BooleanExpression) -> bool:
        if table.current_snapshot() is None:
            return False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return any(True for _ in table.scan(row_filter=expr).plan_files())

    def files(
        self, table: Table, snapshot_id: int | None = None, row_filter: BooleanExpression = AlwaysTrue()
    ) -> list[str]:
        """The data files of the current (or given) snapshot, as engines read them (see
        :meth:`Storage.path_of`); with ``row_filter``, only the files whose partition values and
        column statistics allow matching rows."""
        if table.current_snapshot() is None:
            return []
        scan = table.scan(snapshot_id=snapshot_id, row_filter=row_filter)
        return [self.storage.path_of(t.file.file_path) for t in scan.plan_files()]

    def tables(self) -> list[str]:
        try:
            return sorted(ident[-1] for ident in self.iceberg.list_tables(self.namespace))
        except NoSuchNamespaceError:  # a read-only catalog of a lake that never committed
            return []

    def info(self, name: str) -> TableInfo:
        table = self.load(name)
        if table is None:
            raise LakeError(f"no table {self.identifier(name)}", hint="`retail-etl catalog list` shows the tables")
        snap = table.current_snapshot()
        summary = snap.summary.additional_properties if snap and snap.summary else {}
        return TableInfo(
            name=self.identifier(name),
            zone=table.properties.get(ZONE_PROPERTY, ""),
            location=table.location(),
            rows=int(summary.get("total-records", 0)),
            files=int(summary.get("total-data-files", 0)),
            snapshots=len(table.snapshots()),
        )


def existing_db(storage: Storage, rel: str) -> Path | None:
    """The local file of the lake's SQLite database ``rel`` if the lake has one, else None; creates
    nothing in the lake (on S3 the copy is pulled into local scratch, nothing is uploaded)."""
    if isinstance(storage, LocalStorage):
        path = storage.root / rel  # not db_path(): that creates the lake's folders
    else:
        path = storage.db_path(rel)
    return path if path.is_file() else None


def open_read_only(storage: Storage, namespace: str) -> Catalog | None:
    """The lake's catalog opened for reading only, or None when the lake has none yet.

    Creates nothing: no lake folder, no database file, no namespace, and (on S3) no upload; the
    database is opened with SQLite's ``mode=ro``, so nothing done through it can write.
    """
    path = existing_db(storage, CATALOG_DB)
    if path is None:
        return None
    catalog = Catalog(storage, namespace)
    catalog._catalog = SqlCatalog(
        CATALOG_NAME,
        uri=f"sqlite:///file:{urllib.parse.quote(str(path))}?mode=ro&uri=true",
        warehouse=storage.uri(),
        init_catalog_tables="false",
        **storage.iceberg_properties(),
    )
    return catalog


def _add_files(tx: Transaction, io: FileIO, paths: list[str], props: dict[str, str]) -> None:
    """``Transaction.add_files``, with the schema check done once per file schema.

    pyiceberg converts and checks every file's schema again: two thirds of a commit's time
    when a write produced one file per sale date. The rest is the same: refuse files the
    table already references (a retried step rewrites the same paths), record the name
    mapping (the engines write no field ids), one fast append.
    """
    if len(paths) != len(set(paths)):
        raise ValueError("file paths must be unique")
    referenced = _referenced(tx.table_metadata, io, set(paths))
    if referenced:
        raise ValueError(f"cannot add files the table already references: {', '.join(sorted(referenced))}")
    if tx.table_metadata.name_mapping() is None:
        mapping = tx.table_metadata.schema().name_mapping.model_dump_json()
        tx.set_properties(**{TableProperties.DEFAULT_NAME_MAPPING: mapping})
    with tx.update_snapshot(snapshot_properties=props).fast_append() as append:
        for data_file in _data_files(tx.table_metadata, io, paths):
            append.append_data_file(data_file)


def _referenced(metadata: TableMetadata, io: FileIO, paths: set[str]) -> set[str]:
    """Those of ``paths`` the table's current snapshot (as the transaction has it) refers to."""
    snapshot = metadata.current_snapshot()
    if snapshot is None:
        return set()
    return {
        entry.data_file.file_path
        for manifest in snapshot.manifests(io) if manifest.content == ManifestContent.DATA
        for entry in manifest.fetch_manifest_entry(io, discard_deleted=True)
        if entry.data_file.file_path in paths
    }


def _data_files(metadata: TableMetadata, io: FileIO, paths: list[str]) -> list[DataFile]:
    """Iceberg data files (partition values, column statistics) from the Parquet footers."""
    schema, spec = metadata.schema(), metadata.spec()
    stats_plan = compute_statistics_plan(schema, metadata.properties)
    ids = parquet_path_to_id_mapping(schema)
    checked: list[pa.Schema] = []
    files = []
    for path in paths:
        input_file = io.new_input(path)
        with input_file.open() as stream:
            footer = pq.read_metadata(stream)
        file_schema = footer.schema.to_arrow_schema()
        if not any(file_schema.equals(s) for s in checked):
            _check_pyarrow_schema_compatible(schema, file_schema, format_version=metadata.format_version)
            checked.append(file_schema)
        stats = data_file_statistics_from_parquet_metadata(
            parquet_metadata=footer, stats_columns=stats_plan, parquet_column_mapping=ids
        )
        files.append(DataFile.from_args(
            content=DataFileContent.DATA, file_path=path, file_format=FileFormat.PARQUET,
            partition=stats.partition(spec, schema), file_size_in_bytes=len(input_file), sort_order_id=None,
            spec_id=metadata.default_spec_id, equality_ids=None, key_metadata=None, **stats.to_serialized_dict(),
        ))
    return files
