#!/usr/bin/env bash
# scripts/bao.sh: find the Vault-compatible server that `make demo`, `make test`
# and `make bench` run, or build it, and print its path on stdout. Everything
# else goes to stderr.
#
# The first of these wins:
#   1. $ROTATOR_BAO_BIN, then $BAO (`make demo BAO=/opt/bin/vault`): a path or a
#      command name; an error if it is not an executable OpenBao or Vault.
#   2. .cache/bin/bao, the OpenBao this script built before (rebuilt when
#      tools/bao/go.mod or go.sum is newer).
#   3. `bao` on PATH (OpenBao), then `vault` on PATH (HashiCorp Vault: its
#      `server -dev` takes the same flags; fine for the demo, see README for
#      the tests).
#   4. otherwise OpenBao is built from tools/bao (the Go module proxy) into
#      .cache/bin/bao, once, with a progress line every 15 s.
#
# --quiet: print nothing on stderr unless it builds or fails.
# --build: build .cache/bin/bao whatever there is (`make bao-build`).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

quiet=false build=false
case ${1:-} in
  --quiet) quiet=true ;;
  --build) build=true ;;
  "") ;;
  *) echo "usage: scripts/bao.sh [--quiet|--build]" >&2; exit 2 ;;
esac
say() { $quiet || echo "$@" >&2; }
die() { echo "scripts/bao.sh: $*" >&2; exit 2; }

CACHE=.cache/bin/bao
BAO_VERSION=2.4.0 # keep in step with internal/vaulttest.BaoVersion

# version_of BIN: "OpenBao v2.4.0" or "Vault v1.17.2", or nothing.
version_of() {
  "$1" version 2>/dev/null | awk 'NR == 1 && ($1 == "OpenBao" || $1 == "Vault") {print $1, $2}'
}

use() { # use BIN WHY: report the choice and print the path
  local bin=$1 why=$2 v
  v=$(version_of "$bin")
  [ -n "$v" ] || die "$bin ($why) is not OpenBao or Vault: '$bin version' says '$("$bin" version 2>&1 | head -1)'"
  say "==> Vault server: using $bin ($v, $why)"
  case $v in
    "OpenBao v$BAO_VERSION") ;;
    OpenBao*) say "    (the tests are written against OpenBao $BAO_VERSION; make bao-build builds that one)" ;;
    Vault*) say "    (HashiCorp Vault: fine for the demo; the tests are written against OpenBao $BAO_VERSION)" ;;
  esac
  echo "$bin"
  exit 0
}

fresh() { [ -x "$CACHE" ] && ! [ tools/bao/go.mod -nt "$CACHE" ] && ! [ tools/bao/go.sum -nt "$CACHE" ]; }

if ! $build; then
  for var in ROTATOR_BAO_BIN BAO; do
    val=${!var:-}
    [ -n "$val" ] || continue
    bin=$(command -v "$val" 2>/dev/null) || die "$var=$val: no such executable"
    case $bin in /*) ;; *) bin=$PWD/$bin ;; esac
    use "$bin" "named by $var"
  done
  fresh && use "$PWD/$CACHE" "built before into $CACHE"
  for name in bao vault; do
    bin=$(command -v "$name" 2>/dev/null) && use "$bin" "found on PATH"
  done
fi

# Build it. One build at a time: the same lock as internal/vaulttest's.
mkdir -p "$(dirname "$CACHE")"
if command -v flock >/dev/null; then
  exec 9>"$(dirname "$CACHE")/.bao.lock"
  flock -n 9 || { echo "==> waiting for another build of $CACHE to finish" >&2; flock 9; }
  fresh && ! $build && use "$PWD/$CACHE" "just built by another process"
fi

log=$PWD/.cache/bao-build.log
start=$SECONDS
echo "==> no bao or vault on PATH: building the OpenBao $BAO_VERSION test server once," >&2
echo "    5 to 15 minutes on 2 cores, depending on load (this machine has $(nproc 2>/dev/null || echo '?') cores);" >&2
echo "    cached in $CACHE afterwards. Skip it with a server of your own:" >&2
echo "    put bao or vault on PATH, or ROTATOR_BAO_BIN=/path/to/bao. Full log: .cache/bao-build.log" >&2

pid=
# shellcheck disable=SC2317 # called by the traps
stop() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -f "$CACHE.tmp"; }
trap 'stop; exit 130' INT TERM
trap stop EXIT

# run_ticking LABEL TOTAL CMD...: run CMD (output appended to the log), and
# every 15 s print the elapsed time and how many modules `go` has downloaded
# (TOTAL 0) or how many of TOTAL packages `go build -v` has compiled so far.
run_ticking() {
  local label=$1 total=$2 t=0 n; shift 2
  "$@" >>"$log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    t=$((t + 1))
    if [ $((t % 15)) -eq 0 ]; then
      if [ "$total" -gt 0 ]; then n=", $(grep -c '^[a-z]' "$log" || true) of about $total packages compiled"
      else n=", $(grep -c '^go: downloading' "$log" || true) modules downloaded"; fi
      printf '    %s: %dm%02ds%s\n' "$label" $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60)) "$n" >&2
    fi
  done
  local rc=0
  wait "$pid" || rc=$?
  pid=
  if [ "$rc" -ne 0 ]; then
    echo "==> failed ($label, exit $rc); the last lines of .cache/bao-build.log:" >&2
    tail -25 "$log" >&2
    exit 1
  fi
}

: >"$log"
cd tools/bao
export GOWORK=off
echo "    [1/2] fetching OpenBao's modules from the Go module proxy" >&2
run_ticking "fetching modules" 0 go list -deps -f '{{.ImportPath}}' github.com/openbao/openbao
total=$(grep -c '^[a-z]' "$log" || true)
: >"$log" # from here on: one line per package compiled
echo "    [2/2] compiling about $total packages" >&2
run_ticking "compiling" "$total" go build -v -trimpath \
  -ldflags "-s -w -X github.com/openbao/openbao/version.fullVersion=$BAO_VERSION" \
  -o "../../$CACHE.tmp" github.com/openbao/openbao
cd ../..
mv "$CACHE.tmp" "$CACHE"
echo "==> built $CACHE in $(((SECONDS - start) / 60))m$(printf %02d $(((SECONDS - start) % 60)))s" >&2
use "$PWD/$CACHE" "built just now"
