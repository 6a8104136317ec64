#!/usr/bin/env bash
# `make bench`: runs every component's benchmarks and writes the reports under
# docs/bench/ (markdown for people, raw numbers beside it). Each component's
# runner compares side by side with a peer on this machine where one exists.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=docs/bench
mkdir -p "$out/raw"

# Go micro-benchmarks of every package, raw output kept for benchstat.
go test -run '^$' -bench . -benchmem -count 3 ./... | tee "$out/raw/go-bench.txt"

# Component runners: Go tests named TestBenchReport* in files with the `bench`
# build tag (so `make test` never runs them), each writing its own report into
# $HOIST_BENCH_OUT.
HOIST_BENCH_OUT="$(pwd)/$out" go test -tags bench -count=1 -timeout 60m -run '^TestBenchReport' ./...
echo "bench: reports written under $out/"
