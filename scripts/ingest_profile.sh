#!/usr/bin/env bash
# Ingest as a process of its own under `chargewatch simulate` at max rate in another, on a
# Tansu broker started here: ingest's CPU per frame from /proc, and with PERF=1 its system
# calls and context switches (`perf stat`, Debian's linux-perf). T terminals (100), W reports
# in flight per terminal (32), R reports per terminal (2000). B: the binary
# (target/release/chargewatch). For a call-graph profile with names, build
# `cargo build --profile profiling` and run `perf record -g -p <ingest pid>` during the run.
set -u
B=${B:-$(cd "$(dirname "$0")/.." && pwd)/target/release/chargewatch}
D=$(mktemp -d); cd "$D"
PORT=$((20000 + RANDOM % 10000))
tansu broker --listener-url tcp://127.0.0.1:$PORT --advertised-listener-url tcp://127.0.0.1:$PORT --storage-engine memory://tansu/ >/dev/null 2>&1 &
TANSU=$!
sleep 1
$B simulate --keys keys.toml --write-keys --terminals ${T:-100} --cipher des-cbc --duration 0 >/dev/null
$B topics --brokers 127.0.0.1:$PORT --partitions 3 >/dev/null
RUST_LOG=warn $B ingest --brokers 127.0.0.1:$PORT --keys keys.toml --listen 127.0.0.1:32961 --admin-listen 127.0.0.1:9181 >ingest.log 2>&1 &
ING=$!
sleep 2
read u0 s0 < <(awk '{print $14, $15}' /proc/$ING/stat)
if [ -n "${PERF:-}" ]; then
  perf stat -e context-switches,syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_write,syscalls:sys_enter_read,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex,syscalls:sys_enter_writev,syscalls:sys_enter_sendmsg,syscalls:sys_enter_recvmsg,syscalls:sys_enter_poll -p $ING -o perf.txt &
  PERFPID=$!
fi
start=$(date +%s.%N)
$B simulate --target 127.0.0.1:32961 --keys keys.toml --terminals ${T:-100} --rate 0 --window ${W:-32} --duration ${R:-2000} --quiet 2>&1 | tail -2
end=$(date +%s.%N)
read u1 s1 < <(awk '{print $14, $15}' /proc/$ING/stat)
[ -n "${PERF:-}" ] && { kill -INT $PERFPID; sleep 1; cat perf.txt; }
acked=$(curl -s 127.0.0.1:9181/metrics | awk '/^ingest_replies_total.*success/ {s+=$2} END {print s}')
frames=$(curl -s 127.0.0.1:9181/metrics | awk '/^ingest_frames_received_total/ {s+=$2} END {print s}')
echo "frames $frames, ingest CPU user $(( (u1-u0) )) ticks sys $(( (s1-s0) )) ticks over $(echo "$end - $start" | bc) s"
echo "ingest CPU per frame: $(echo "scale=2; ($u1-$u0+$s1-$s0)*10000/$frames" | bc) us"
kill $ING; sleep 1; kill $TANSU; rm -rf "$D"
