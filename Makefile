# hoist — one build, one test command. See README.md.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
LDFLAGS := -s -w -X github.com/hoist-project/hoist/internal/version.Version=$(VERSION)
BIN := $(CURDIR)/bin
# Go test timeout for the whole suite; CI allows 90 minutes, we aim for 25.
TEST_TIMEOUT ?= 40m
DATA_DIR ?= /var/lib/hoist

.PHONY: all deps build test test-unit bench lint generate up down clean

all: build

deps:
	bash packaging/install/deps.sh

build:
	@mkdir -p $(BIN)/cni
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/hoist ./cmd/hoist-log-driver ./packaging/images/pause ./packaging/images/testbox
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/cni/ ./cni-plugins/...

# Unit, integration and e2e tests. Integration and e2e tests need root and the
# prerequisites from `make deps`; a missing one fails with a message naming it.
test: build
	HOIST_BIN_DIR=$(BIN) $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

# Only the tests that need neither root nor system packages.
test-unit:
	$(GO) test -count=1 -skip '^Test(Integration|E2E)' ./...

bench: build
	HOIST_BIN_DIR=$(BIN) bash packaging/install/bench.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

generate:
	$(GO) generate ./...

# The embedded default: a master with embedded etcd and a node on this machine.
up: build
	$(BIN)/hoist up --data-dir $(DATA_DIR)

down: build
	$(BIN)/hoist cluster down --all

clean:
	rm -rf $(BIN)
