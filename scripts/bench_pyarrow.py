#!/usr/bin/env python3
"""The reference side of `chargewatch bench sink`: pyarrow writing the same rows to Parquet
with the same settings, on one core. Reads the rows from an Arrow IPC file (not timed), times
`pyarrow.parquet.write_table` `rounds` times, prints the best as JSON.

Usage: scripts/bench_pyarrow.py ROWS.arrow OUT.parquet ZSTD_LEVEL ROW_GROUP_ROWS ROUNDS
"""
import json
import os
import sys
import time

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq


def main(rows_path, out_path, level, row_group, rounds):
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    with pa.memory_map(rows_path) as source:
        table = ipc.open_file(source).read_all()
    best = None
    for _ in range(rounds):
        started = time.perf_counter()
        pq.write_table(
            table,
            out_path,
            compression="zstd",
            compression_level=level,
            row_group_size=row_group,
            use_dictionary=True,
            write_statistics=True,
        )
        elapsed = time.perf_counter() - started
        best = elapsed if best is None else min(best, elapsed)
    print(json.dumps({
        "rows": table.num_rows,
        "seconds": best,
        "bytes": os.path.getsize(out_path),
        "version": pa.__version__,
    }))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
