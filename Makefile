# rotator — build, test and demo targets. Go comes from /usr/local/go on the
# project's machines; everything else is built from the Go module proxy.
SHELL      := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)

VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS    := -s -w -X main.version=$(VERSION)
BIN        := .cache/bin
# The Vault-compatible server the tests, the demo and the benchmarks run is
# chosen by scripts/bao.sh: $ROTATOR_BAO_BIN or $BAO (`make demo BAO=...`),
# else .cache/bin/bao built before, else `bao` or `vault` on PATH, else it
# builds OpenBao from tools/bao (its own module, so the main module's
# dependency tree stays small) into .cache/bin/bao, once, showing progress.
BAO_BIN     = $$(./scripts/bao.sh --quiet)
# golangci-lint too has its own module (tools/golangci-lint), pinned by its go.mod.
GOLANGCI   := $(BIN)/golangci-lint
GOLANGCI_V := $(shell awk '$$1 == "github.com/golangci/golangci-lint/v2" {print $$2}' tools/golangci-lint/go.mod)
FUZZTIME   ?= 10s

.PHONY: all build test test-race test-short lint fmt vet demo bao bao-build golangci-lint fuzz check-deploy bench clean

all: lint build test

build: ## rotator and the Hood test server, with version ldflags
	@echo "==> building rotator and the Hood test server into $(BIN) (about 2 min on 2 cores the first time)"
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/rotator ./cmd/rotator
	CGO_ENABLED=0 go build -trimpath -o $(BIN)/hoodtest ./cmd/hoodtest

bao: ## find the OpenBao/Vault server the tests and the demo run, or build OpenBao once (scripts/bao.sh)
	@./scripts/bao.sh >/dev/null

bao-build: ## build OpenBao into .cache/bin/bao even when a server is on PATH
	@./scripts/bao.sh --build >/dev/null

$(GOLANGCI): tools/golangci-lint/go.mod tools/golangci-lint/go.sum
	@mkdir -p $(BIN)
	cd tools/golangci-lint && go build -trimpath -ldflags '-s -w -X main.version=$(GOLANGCI_V:v%=%)' \
		-o ../../$(GOLANGCI).tmp github.com/golangci/golangci-lint/v2/cmd/golangci-lint
	mv $(GOLANGCI).tmp $(GOLANGCI)

golangci-lint: $(GOLANGCI) ## the linter `make lint` runs (about 5 min on 2 cores the first time)

test: bao vet ## every test, against a real OpenBao server and the Hood test server
	@echo "==> go test -race over every package: about 6 minutes on 2 cores (more the first time,"
	@echo "    which compiles every package with -race); a line per package as it finishes"
	ROTATOR_BAO_BIN=$(BAO_BIN) go test -race -count=1 ./...

test-race: test

test-short: bao
	ROTATOR_BAO_BIN=$(BAO_BIN) go test -count=1 ./...

fuzz: ## each fuzz target for FUZZTIME (CI: 20000x, a count; by hand try FUZZTIME=10m, and rerun a bare "context deadline exceeded" with no failing input: golang/go#75804)
	go test ./internal/config -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	go test ./internal/hood -run '^$$' -fuzz '^FuzzParseError$$' -fuzztime $(FUZZTIME)
	go test ./internal/rotate -run '^$$' -fuzz '^FuzzBuildSettings$$' -fuzztime $(FUZZTIME)

bench: bao ## the benchmarks of docs/BENCHMARKS.md (about 28 min, 18 of them BenchmarkFleetAllowance; ROTATOR_BENCH_IDLE=300s for the issue's 5-min window)
	@[ -x /usr/bin/time ] || (apt-get update -qq && apt-get install -y -qq time)  # GNU time: a child's peak RSS
	ROTATOR_BAO_BIN=$(BAO_BIN) ./scripts/bench.sh

check-deploy: ## Dockerfile, systemd units, Kubernetes manifests, alerts, dashboard (installs its checkers)
	bash scripts/check-deploy.sh

vet:
	go vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

lint: vet $(GOLANGCI) ## gofmt, go vet and golangci-lint (.golangci.yml)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GOLANGCI) run ./...

demo: bao build ## rotator run against a local OpenBao (or Vault) dev server and the Hood test server, about 30 s
	@./scripts/demo.sh

clean:
	rm -rf .cache/bin rotator hoodtest
