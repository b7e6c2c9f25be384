# Kiln's build, test and demo entry points. Every tool is pinned and built from the Go module
# proxy into ./bin, so a fresh machine needs only Go, make and the apt packages in .ci/run.

SHELL         := /bin/bash
GO            ?= go
BIN           := $(CURDIR)/bin
REGISTRY_VER  := v3.0.0
GOLANGCI_VER  := v2.15.0
GOTESTFLAGS   ?=
# BuildKit and runc come from the versions pinned in go.mod.
BUILDKIT_VER  := $(shell $(GO) list -m -f '{{.Version}}' github.com/moby/buildkit)
RUNC_VER      := v1.5.2
export KILN_REGISTRY_BIN := $(BIN)/registry
export KILN_BUILDKITD    := $(BIN)/buildkitd
export KILN_RUNC         := $(BIN)/runc
# tools/go fetches the Go toolchain modules from the module proxy this machine uses.
export GOPROXY_URL ?= $(firstword $(subst $(comma), ,$(shell $(GO) env GOPROXY)))
comma := ,

.PHONY: all build tools lint test test-heavy test-short bench bench-boots appliance-arches self-rebuild demo clean binfmt deps

all: build

build: $(BIN)/kiln

$(BIN)/kiln: FORCE
	$(GO) build -trimpath -o $@ ./cmd/kiln

FORCE:

tools: $(BIN)/registry $(BIN)/golangci-lint $(BIN)/buildkitd $(BIN)/buildctl $(BIN)/runc $(BIN)/containerd

# containerd and its runc shim, for init's supervisor tests (static, as in system/containerd).
CONTAINERD_VER := v2.4.2
export KILN_CONTAINERD := $(BIN)/containerd
$(BIN)/containerd:
	CGO_ENABLED=0 GOBIN=$(BIN) $(GO) install -trimpath -tags "no_btrfs no_devmapper no_zfs" \
		github.com/containerd/containerd/v2/cmd/containerd@$(CONTAINERD_VER) \
		github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$(CONTAINERD_VER)

# buildkitd, built from our own module (buildkit's go.mod has exclude directives that stop
# `go install pkg@version`). About 2-10 minutes cold on 2 cores; rebuilt when go.mod changes.
$(BIN)/buildkitd: go.mod
	$(GO) build -trimpath -ldflags "-X github.com/moby/buildkit/version.Version=$(BUILDKIT_VER)" -o $@ github.com/moby/buildkit/cmd/buildkitd

# buildctl, BuildKit's own client at the same version: the appliance's tests build through it
# over mutual TLS, as a user without kiln would.
export KILN_BUILDCTL := $(BIN)/buildctl
# chronyd, unpacked from Debian by scripts/deps.sh: services/time's tests ask it on 127.0.0.1.
export KILN_CHRONYD := $(BIN)/chrony/usr/sbin/chronyd
$(BIN)/buildctl: go.mod
	$(GO) build -trimpath -ldflags "-X github.com/moby/buildkit/version.Version=$(BUILDKIT_VER)" -o $@ github.com/moby/buildkit/cmd/buildctl

# A static runc with seccomp (needs libseccomp-dev), for buildkitd's OCI worker.
$(BIN)/runc:
	CGO_ENABLED=1 GOBIN=$(BIN) $(GO) install -trimpath -tags "seccomp netgo osusergo" \
		-ldflags "-s -w -extldflags -static" github.com/opencontainers/runc@$(RUNC_VER)

# distribution's registry, the real OCI registry the integration tests push to and pull from.
$(BIN)/registry:
	GOBIN=$(BIN) $(GO) install github.com/distribution/distribution/v3/cmd/registry@$(REGISTRY_VER)

$(BIN)/golangci-lint:
	GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VER)

# Packages whose code is a Go module of its own (their build context is their folder).
SUBMODULES    := init kernel/tools services/hello services/metadata services/buildkitd services/network \
                 services/disk services/time services/sshd

lint: $(BIN)/golangci-lint
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(BIN)/golangci-lint run ./...
	set -e; for m in $(SUBMODULES); do (cd $$m && $(GO) vet ./... && $(BIN)/golangci-lint run --config $(CURDIR)/.golangci.yml ./...); done

# The full suite: lint, unit, golden and integration tests (a real registry and real buildkitd
# daemons on loopback), and the bootstrap: the Debian seed, tools/debian-base, tools/go and
# services/hello built for amd64, arm64 and s390x, twice, compared byte for byte.
# make test after make demo: the e2e world starts from the demo's images (internal/e2e's
# seedCache), so the packages the demo built for this machine are not built again.
test: export KILN_E2E_CACHE_FROM := $(wildcard $(CURDIR)/_out/demo/cache)
test: deps tools lint binfmt $(BIN)/testsum
	set -o pipefail; { rc=0; \
	  for m in $(SUBMODULES); do (cd $$m && $(GO) test -json $(GOTESTFLAGS) -count=1 ./...) || rc=1; done; \
	  $(GO) test -json $(GOTESTFLAGS) -timeout 75m -count=1 ./... || rc=1; \
	  exit $$rc; } | $(BIN)/testsum

# testsum turns `go test -json` into package lines, failures, skip reasons and a closing
# "N passed, N failed, N skipped" line; under CI=true a skipped test fails the run.
$(BIN)/testsum: FORCE
	$(GO) build -o $@ ./internal/cmd/testsum

# Register qemu-user for foreign architectures in binfmt_misc (root; needs qemu-user-static).
binfmt:
	./scripts/binfmt.sh

test-short:
	$(GO) test -short ./...

# Benchmarks: every figure of docs/performance.md, written into its table (kilnbench): the
# 1 GiB, 100k-file and five-container builds, pkgbench, the Go micro-benchmarks and, when
# `make demo` has run, QEMU boots of images/minimal.yml with a gzip and a zstd initramfs
# (built from the demo's cache, pinned by its lock file).
DEMO_LOCK := _out/demo/sys/minimal.lock.yml
bench: build
	@test -f $(DEMO_LOCK) || echo "boot figures: run make demo first (it fills _out/demo/cache and writes $(DEMO_LOCK))"
	$(GO) run ./internal/cmd/kilnbench -kiln $(BIN)/kiln -doc docs/performance.md -pkgbench -micro \
		$(if $(wildcard $(DEMO_LOCK)),-boot-system images/minimal.yml -boot-cache _out/demo/cache -boot-lock $(DEMO_LOCK))

# The boot matrix: images/minimal.yml for amd64, arm64 and s390x, each booted in interleaved
# pairs with the bare kernel (bootcheck -pairs), the median budgets written into
# docs/performance.md. Heavy (30-45 minutes from nothing); BOOTS_CACHE=DIR reuses a cache that
# holds the packages already. See scripts/bootbench.sh.
bench-boots: build tools
	./scripts/bootbench.sh

# The appliance on arm64 and s390x (ARCHES to change): built, booted in 1 GiB, checked over
# mutual TLS, its boot-to-"buildkitd ready" written into docs/performance.md. CI boots amd64 in
# TestAppliance; this is the heavier matrix. See scripts/appliance-arches.sh.
appliance-arches: deps build tools binfmt
	./scripts/appliance-arches.sh

# make test with s390x in the end-to-end tests too: its seed, packages and a boot of
# minimal.yml (internal/e2e/arches_heavy_test.go). Too slow for CI's budget on a cold machine.
test-heavy:
	$(MAKE) test GOTESTFLAGS="$(GOTESTFLAGS) -tags e2eheavy"

# Every package of images/builder.yml built again on a booted appliance (after make demo),
# compared by digest, the times recorded in docs/appliance.md. Hours under emulation. See
# scripts/self-rebuild.sh.
self-rebuild: deps build tools
	./scripts/self-rebuild.sh

# The main job: build the builder appliance (images/builder.yml) for this machine from Debian's
# packages and the Go module proxy (seed, packages, system), twice, boot it in QEMU and build a
# package on it over mutual TLS. See scripts/demo.sh.
demo: deps build tools
	./scripts/demo.sh

# Debian packages from the machine's apt sources, when missing (see scripts/deps.sh).
deps:
	./scripts/deps.sh

clean:
	rm -rf $(BIN) out _out
