# Relais: the one entry point for building and testing. `make test` is what
# CI runs (.ci/run).

GO      ?= go
PKGS    ?= ./...
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)

.PHONY: all build run test test-deps check fmt vet lint unit race fuzz bench bench-directory bench-smime bench-chat bench-crash bench-compare clean

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/relais ./cmd/relais

run: build
	./bin/relais serve

# test: everything CI checks, in order of cost.
test: test-deps check unit race fuzz

# Debian packages the suite's real clients need (curl, python3, openssl,
# tmux, neomutt, ldap-utils, unzip), then Chromium and playwright-core for
# the browser test; installs only what is missing. Then the PostgreSQL
# server of the storage/postgres and cluster tests is started if it is
# installed but stopped.
test-deps:
	@scripts/test-deps.sh
	@scripts/browser-deps.sh
	@scripts/postgres.sh

check: fmt vet lint

# gofmt must have nothing to say.
fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

# staticcheck is pinned in go.mod as a tool dependency.
lint:
	$(GO) tool staticcheck $(PKGS)

unit:
	$(GO) test -count=1 -timeout 10m $(PKGS)

# The race detector on the packages with shared state.
# storage/postgres runs its multi-node tests under the race detector; its
# conformance suite, the same as SQLite's, ran in unit.
race:
	$(GO) test -count=1 -race -timeout 10m $$($(GO) list ./storage/... | grep -v '/storage/postgres$$') ./internal/... ./imap/... ./smtp/... ./directory/... ./crypto/... ./document/... ./chat/...
	$(GO) test -count=1 -race -timeout 10m -run 'TwoNodes|AcrossNodes|Concurrent' ./storage/postgres

# A bounded run of each fuzz target (longer runs: bench/fuzz.sh). 8 s each
# keeps the 28 targets (about 3 s of build and start-up each) within
# about 6 minutes on 2 cores.
FUZZTIME ?= 8s
fuzz:
	@scripts/fuzz.sh $(FUZZTIME)

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./storage/... ./smtp/... ./imap/... ./directory/... ./crypto/... ./chat/...

# The directory at national scale: 2M-line RPPS import and search latency.
bench-directory:
	bench/directory.sh

# Relais beside Postfix+Dovecot (installed from Debian's packages): SMTP
# ingest, an IMAP mixed workload, memory per idle connection.
bench-compare:
	bench/compare.sh

# kill -9 under mixed load, 20 rounds: nothing acknowledged may be lost.
bench-crash:
	bench/crash.sh

# S/MIME sign+encrypt and open per second, beside openssl speed rsa2048.
bench-smime:
	bench/smime.sh

# 10,000 WebSocket connections in 1,000 rooms: fan-out latency and memory.
bench-chat:
	bench/chat.sh

clean:
	rm -rf bin
