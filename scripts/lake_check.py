#!/usr/bin/env python3
"""Reads a chargewatch lake with DuckDB and with pyarrow, Hive partitioning on, and prints per
table the row count each engine sees and the (date, hour) partitions DuckDB found, as JSON.

Usage: scripts/lake_check.py LAKE_DIR   (the tests compare the counts with what was produced)
"""
import json
import os
import sys

import duckdb
import pyarrow.dataset as ds


def main(lake):
    out = {}
    for table in ("telemetry", "alerts", "deadletter", "events"):
        path = os.path.join(lake, table)
        if not os.path.isdir(path):
            continue
        glob = os.path.join(path, "**", "*.parquet")
        con = duckdb.connect()
        rows, partitions = con.execute(
            "SELECT count(*), count(DISTINCT (date, hour)) "
            "FROM read_parquet(?, hive_partitioning = true)",
            [glob],
        ).fetchone()
        dataset = ds.dataset(path, format="parquet", partitioning="hive")
        out[table] = {
            "duckdb": rows,
            "duckdb_partitions": partitions,
            "pyarrow": dataset.count_rows(),
            "pyarrow_columns": len(dataset.schema),
        }
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1])
