#!/usr/bin/env python3
"""Reads a chargewatch lake with independent engines and prints, per table, what each sees, as
JSON: the `deltalake` package (delta-rs's Python binding) reads the Delta log and counts the
rows of its current snapshot (`delta`); for a local lake, DuckDB and pyarrow read exactly the
files that snapshot lists (Hive partitioning on), so a file the log does not name is never
counted (`duckdb`, `pyarrow`).

Usage: scripts/lake_check.py LAKE [OPTIONS_JSON]
LAKE is a directory or an s3:// URL; OPTIONS_JSON the object store options (aws_endpoint, ...).
"""
import json
import os
import sys

import duckdb
import pyarrow.dataset as ds
from deltalake import DeltaTable


def main(lake, options):
    remote = "://" in lake
    out = {}
    for table in ("telemetry", "alerts", "deadletter", "events"):
        path = lake.rstrip("/") + "/" + table
        if not remote and not os.path.isdir(os.path.join(path, "_delta_log")):
            continue
        try:
            delta = DeltaTable(path, storage_options=options or None)
        except Exception as error:
            if type(error).__name__ == "TableNotFoundError":  # no log (yet) for this table
                continue
            raise
        files = delta.file_uris()
        entry = {
            "version": delta.version(),
            "files": len(files),
            "delta": delta.to_pyarrow_dataset().count_rows(),
            "delta_columns": len(delta.schema().fields),
        }
        if not remote:
            if files:
                con = duckdb.connect()
                rows, partitions = con.execute(
                    "SELECT count(*), count(DISTINCT (date, hour)) "
                    "FROM read_parquet(?, hive_partitioning = true, union_by_name = true)",
                    [files],
                ).fetchone()
                dataset = ds.dataset(files, format="parquet", partitioning="hive")
                entry.update(duckdb=rows, duckdb_partitions=partitions, pyarrow=dataset.count_rows())
            else:
                entry.update(duckdb=0, duckdb_partitions=0, pyarrow=0)
        out[table] = entry
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {})
