# Kiln's build, test and demo entry points. Every tool is pinned and built from the Go module
# proxy into ./bin, so a fresh machine needs only Go, make and the apt packages in .ci/run.

GO            ?= go
BIN           := $(CURDIR)/bin
REGISTRY_VER  := v3.0.0
GOLANGCI_VER  := v2.15.0
GOTESTFLAGS   ?=
export KILN_REGISTRY_BIN := $(BIN)/registry

.PHONY: all build tools lint test test-short bench demo clean

all: build

build: $(BIN)/kiln

$(BIN)/kiln: FORCE
	$(GO) build -trimpath -o $@ ./cmd/kiln

FORCE:

tools: $(BIN)/registry $(BIN)/golangci-lint

# distribution's registry, the real OCI registry the integration tests push to and pull from.
$(BIN)/registry:
	GOBIN=$(BIN) $(GO) install github.com/distribution/distribution/v3/cmd/registry@$(REGISTRY_VER)

$(BIN)/golangci-lint:
	GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VER)

lint: $(BIN)/golangci-lint
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(BIN)/golangci-lint run ./...

# The full suite: lint, unit, golden and integration tests (a real registry on loopback).
test: tools lint
	CI=$${CI:-} $(GO) test $(GOTESTFLAGS) -count=1 ./...

test-short:
	$(GO) test -short ./...

# Benchmarks: the 1 GiB build (wall time, throughput, peak RSS) and the Go micro-benchmarks.
bench: build
	$(GO) run ./internal/cmd/kilnbench -kiln $(BIN)/kiln
	$(GO) test -run '^$$' -bench . -benchmem ./internal/... ./assemble/...

# The main job. Today: build the example system in examples/ from YAML.
demo: build
	./scripts/demo.sh

clean:
	rm -rf $(BIN) out
