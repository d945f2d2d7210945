# etcdsync developer entry points. `make help` lists them.
SHELL := /bin/bash
GO    ?= go
ETCD  := bin/etcd
# Fuzz budget for `make fuzz`; `make test` only replays the checked-in corpus.
FUZZTIME ?= 5m

# Extra flags for `make run`, and for `make leaf`.
NODE_FLAGS ?=
LEAF_FLAGS ?=
# Where `make run` serves relay clients, such as `make leaf`; empty: no relay
# (needed with NODE_FLAGS="--model calicov1").
RELAY_LISTEN ?= 127.0.0.1:9096
# Random fault schedules for `make soak` (make test runs 500).
SCHEDULES ?= 5000

.PHONY: help deps etcd build test lint run leaf bench fuzz soak clean

help:
	@echo "make deps   download Go modules"
	@echo "make etcd   build bin/etcd (v3.5.x, --enable-v2) from the pinned module"
	@echo "make run    run the reference node on an embedded etcd, relaying on $(RELAY_LISTEN)"
	@echo "make leaf   run a leaf node that syncs from the relay of make run"
	@echo "make test   lint, then every test and spec (race detector on)"
	@echo "make bench  run every measurement on real etcd and rewrite BENCHMARKS.md"
	@echo "make fuzz   fuzz the hwm tracker against its reference model, and the leaf's relay frame reader (FUZZTIME=$(FUZZTIME) each)"
	@echo "make soak   run SCHEDULES=$(SCHEDULES) random fault schedules on the simulated etcd"

deps:
	$(GO) mod download

# The etcd server is a tool dependency in go.mod, so its version is the one
# pinned there and go.sum covers everything it needs.
$(ETCD): go.mod go.sum
	@mkdir -p bin
	$(GO) build -o $(ETCD) go.etcd.io/etcd/server/v3

etcd: $(ETCD)

build:
	$(GO) build ./...

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt -l reports:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	GO=$(GO) bash .ci/layering.sh

# Every package runs under the race detector: the actor packages are
# concurrent, and the pure ones are cheap enough that excluding them would
# only save seconds.
test: lint $(ETCD)
	ETCDSYNC_ETCD_BIN=$(CURDIR)/$(ETCD) $(GO) test -race -count=1 -timeout 20m ./...

# The reference node on an embedded etcd (data in .data/etcd, git-ignored);
# NODE_FLAGS="--help" lists its flags. Built, then run: `go run` exits 1
# after Ctrl-C whatever the node returns. -buildvcs=auto stamps the git
# revision that `bin/node --version` prints, even where GOFLAGS turns it off.
run:
	$(GO) build -buildvcs=auto -o bin/node ./cmd/node
	bin/node $(if $(RELAY_LISTEN),--relay-listen $(RELAY_LISTEN)) $(NODE_FLAGS)

# A leaf: a second node, syncing from the relay of `make run` instead of
# etcd, with its HTTP server on the next port.
leaf:
	$(GO) build -buildvcs=auto -o bin/node ./cmd/node
	bin/node --relay-endpoints http://$(RELAY_LISTEN) --listen 127.0.0.1:9097 $(LEAF_FLAGS)

# Every measurement in one run, on real etcd; rewrites BENCHMARKS.md.
bench: $(ETCD)
	bash e2e/bench/bench.sh

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzTracker -fuzztime $(FUZZTIME) -fuzzminimizetime 10s ./hwm
	$(GO) test -run '^$$' -fuzz FuzzRelayFeed -fuzztime $(FUZZTIME) -fuzzminimizetime 10s ./actors

# Seeds are printed on failure; ETCDSYNC_SCHEDULE_SEED=<seed> replays one.
soak:
	ETCDSYNC_SCHEDULES=$(SCHEDULES) ETCDSYNC_MERGE_SCHEDULES=1000000 $(GO) test -count=1 -timeout 6h \
		-run 'TestE2E|TestMergeRandomSchedules' ./e2e ./actors -ginkgo.label-filter=schedule

clean:
	rm -rf bin
