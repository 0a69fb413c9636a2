#!/usr/bin/env python3
"""The reference side of `chargewatch bench query`: DuckDB running the same queries over the
same Parquet files (the files of the Delta table's current snapshot, as the `deltalake` package
lists them; Hive partitioning on), with THREADS threads. Prints, as JSON, the best of
ROUNDS wall-clock times per query in seconds and each answer's row count.

Usage: scripts/bench_duckdb.py LAKE_DIR QUERIES.json THREADS ROUNDS
QUERIES.json is a list of SQL texts over a view named `telemetry`.
"""
import json
import os
import sys
import time

import duckdb
from deltalake import DeltaTable


def main(lake, queries_path, threads, rounds):
    with open(queries_path) as f:
        queries = json.load(f)
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    files = DeltaTable(os.path.join(lake, "telemetry")).file_uris()
    listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    con.execute(
        f"CREATE VIEW telemetry AS SELECT * FROM read_parquet([{listed}], hive_partitioning = true)"
    )
    out = []
    for sql in queries:
        best, rows = None, 0
        for _ in range(rounds):
            started = time.perf_counter()
            # Into Arrow, as the other side collects RecordBatches.
            rows = con.sql(sql).to_arrow_table().num_rows
            elapsed = time.perf_counter() - started
            best = elapsed if best is None else min(best, elapsed)
        out.append({"seconds": best, "rows": rows})
    print(json.dumps({"version": duckdb.__version__, "queries": out}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
