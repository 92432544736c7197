#!/usr/bin/env bash
# scripts/bench.sh: the benchmarks of docs/BENCHMARKS.md (issue #6), with a
# header describing the machine. Everything runs on loopback: a real OpenBao
# dev server, the Hood test server and the rotator binary built by the
# benchmarks themselves.
#
#   scripts/bench.sh                         # every benchmark (about 28 minutes)
#   BENCH=FleetAllowance scripts/bench.sh    # three daemons sharing the Hood allowance (about 18 minutes)
#   ROTATOR_BENCH_IDLE=300s scripts/bench.sh # the issue's 5-minute idle window (about 32 minutes)
#   BENCH=RateLimit ROTATOR_BENCH_N=100 scripts/bench.sh   # one benchmark, one size
#   OUT=bench.txt scripts/bench.sh           # also keep the output in a file
#
# Environment: BENCH (the -bench pattern, default "."), ROTATOR_BENCH_N,
# ROTATOR_BENCH_IDLE, ROTATOR_BENCH_SCALE, ROTATOR_BENCH_WATCH,
# ROTATOR_BENCH_WATCH_WRITES, ROTATOR_BENCH_ROTATION_N, ROTATOR_BENCH_GRACE,
# ROTATOR_BENCH_FLEET_N, ROTATOR_BENCH_FLEET_KILL, ROTATOR_BENCH_PROFILE (see
# bench/bench_test.go), ROTATOR_BAO_BIN (default .cache/bin/bao).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
export ROTATOR_BAO_BIN=${ROTATOR_BAO_BIN:-$PWD/.cache/bin/bao}
[ -x "$ROTATOR_BAO_BIN" ] || { echo "no bao binary at $ROTATOR_BAO_BIN: run 'make bao'" >&2; exit 2; }

header() {
  echo "# rotator benchmarks, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# commit: $(git describe --always --dirty 2>/dev/null || echo unknown)"
  echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
  echo "# memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo); kernel $(uname -r)"
  echo "# $(go version); bao: $("$ROTATOR_BAO_BIN" version 2>/dev/null | head -1)"
  echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# env: ROTATOR_BENCH_N=${ROTATOR_BENCH_N:-100,450} ROTATOR_BENCH_IDLE=${ROTATOR_BENCH_IDLE:-60s} ROTATOR_BENCH_SCALE=${ROTATOR_BENCH_SCALE:-100,1000,10000} ROTATOR_BENCH_WATCH=${ROTATOR_BENCH_WATCH:-1s,5s} ROTATOR_BENCH_WATCH_WRITES=${ROTATOR_BENCH_WATCH_WRITES:-100} ROTATOR_BENCH_ROTATION_N=${ROTATOR_BENCH_ROTATION_N:-100} ROTATOR_BENCH_GRACE=${ROTATOR_BENCH_GRACE:-1s} ROTATOR_BENCH_FLEET_N=${ROTATOR_BENCH_FLEET_N:-450} ROTATOR_BENCH_FLEET_KILL=${ROTATOR_BENCH_FLEET_KILL:-90s}"
}

run() {
  header
  # -timeout 0: the 450-integration rate-limit pass alone takes over 4 minutes,
  # BenchmarkFleetAllowance about 18.
  go test -run '^$' -bench "${BENCH:-.}" -count 1 -timeout 0 ./bench/
  echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
}

if [ -n "${OUT:-}" ]; then
  run 2>&1 | tee "$OUT"
else
  run
fi
