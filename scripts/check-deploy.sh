#!/usr/bin/env bash
# Checks the deployment files: Dockerfile, deploy/ and docs/operations.md.
# Installs what it needs when missing (Debian packages with apt-get, Go
# modules through the module proxy, npm packages from package-lock.json),
# runs every checker even after a failure, and exits 1 if any failed.
#
#   bash scripts/check-deploy.sh
#
# Checkers (docs/operations.md, "How these files are checked"):
#   go test ./deploy/...       properties and consistency of every file, the example
#                              configurations through rotator's validation, metric names,
#                              the documented Vault set-up against OpenBao and a real pass
#   systemd-analyze verify     the units (ExecStart pointed at a freshly built binary)
#   systemd-analyze security   the services' sandbox (offline), exposure at most 2.0
#   promtool check/test rules  the alerting rules and their unit tests
#   k8scheck                   the manifests against the Kubernetes Go API types (strict:
#                              unknown fields fail), API-server naming rules, kustomize build
#   k8s-schema                 the manifests against the Kubernetes OpenAPI schemas
#   dockerfile-utils lint      the Dockerfile
#   this script, with shellcheck
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export PATH=/usr/local/go/bin:$PATH
ROOT=$(pwd)

# --- install what is missing -------------------------------------------------
# prometheus is Debian's package of promtool (and the server, which is not
# started in a container without systemd). --no-install-recommends keeps out
# node_exporter and friends.
need=()
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v promtool >/dev/null || need+=(prometheus)
command -v shellcheck >/dev/null || need+=(shellcheck)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
[ -x /bin/kill ] || need+=(procps)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing ${need[*]}"
  apt-get update -qq || exit 1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || exit 1
fi

go version
echo "systemd-analyze: $(systemd-analyze --version | head -1)"
echo "promtool: $(promtool --version 2>&1 | head -1)"
echo "shellcheck: $(shellcheck --version | sed -n 's/^version: //p')"
echo "node: $(node --version), npm: $(npm --version)"

failures=()
step() {
  local name=$1
  shift
  echo
  echo "==> $name"
  if "$@"; then
    echo "--- ok: $name"
  else
    echo "--- FAILED: $name"
    failures+=("$name")
  fi
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- Go: formatting, vet, the deploy tests -----------------------------------
gofmt_check() {
  local out
  out=$(gofmt -l deploy) || return 1
  [ -z "$out" ] || { echo "gofmt needed:"; echo "$out"; return 1; }
}
step "gofmt deploy/" gofmt_check
step "go vet ./deploy/..." go vet ./deploy/...
# ROTATOR_DEPLOY_STRICT=1: a missing tool fails the tests instead of skipping them.
step "go test ./deploy/..." env ROTATOR_DEPLOY_STRICT=1 go test -count=1 ./deploy/...

# --- systemd ------------------------------------------------------------------
# systemd-analyze verify refuses a unit whose ExecStart= binary does not exist,
# so it checks copies of the units with /usr/local/bin/rotator replaced by a
# binary built now. It reports unknown or misspelt settings as warnings and
# still exits 0, so any output is a failure too.
systemd_verify() {
  CGO_ENABLED=0 go build -trimpath -o "$tmp/bin/rotator" ./cmd/rotator || return 1
  mkdir -p "$tmp/units"
  local f
  for f in deploy/systemd/*.service deploy/systemd/*.timer; do
    sed "s#/usr/local/bin/rotator#$tmp/bin/rotator#g" "$f" >"$tmp/units/$(basename "$f")"
  done
  local out rc
  out=$(cd "$tmp/units" && systemd-analyze verify ./*.service ./*.timer 2>&1)
  rc=$?
  [ -z "$out" ] || echo "$out"
  [ $rc -eq 0 ] && [ -z "$out" ]
}
step "systemd-analyze verify deploy/systemd/*" systemd_verify

systemd_security() {
  local f rc=0
  for f in deploy/systemd/*.service; do
    systemd-analyze security --offline=yes --threshold=20 "$f" | tail -1 || rc=1
  done
  return $rc
}
step "systemd-analyze security --offline (exposure <= 2.0)" systemd_security

# --- Prometheus ---------------------------------------------------------------
step "promtool check rules" promtool check rules deploy/prometheus/alerts.yaml
step "promtool test rules" promtool test rules deploy/prometheus/alerts_test.yaml

# --- Kubernetes -----------------------------------------------------------------
k8scheck() { (cd deploy/tools/k8scheck && go run . "$ROOT/deploy/kubernetes"); }
step "k8scheck (Kubernetes Go types, strict)" k8scheck

npm_ready=0
npm_install() {
  (cd deploy/tools/node && npm ci --no-audit --no-fund --loglevel=error) && npm_ready=1
}
step "npm ci (deploy/tools/node)" npm_install
if [ $npm_ready -eq 1 ]; then
  k8s_schema() { (cd deploy/tools/node && node k8s-schema.mjs "$ROOT/deploy/kubernetes"); }
  dockerfile_lint() { (cd deploy/tools/node && ./node_modules/.bin/dockerfile-utils lint "$ROOT/Dockerfile"); }
  step "k8s-schema (Kubernetes OpenAPI schemas)" k8s_schema
  step "dockerfile-utils lint Dockerfile" dockerfile_lint
fi

# --- this script ----------------------------------------------------------------
step "shellcheck scripts/check-deploy.sh" shellcheck scripts/check-deploy.sh

echo
if [ ${#failures[@]} -gt 0 ]; then
  echo "check-deploy: ${#failures[@]} check(s) failed:"
  printf '  %s\n' "${failures[@]}"
  exit 1
fi
echo "check-deploy: all checks passed"
