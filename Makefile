# etcdsync developer entry points. `make help` lists them.
SHELL := /bin/bash
GO    ?= go
ETCD  := bin/etcd
# etcd 3.7 (v3 API only), built from the module of its own in e2e/etcd37.
ETCD37 := bin/etcd37
# Fuzz budget for `make fuzz`; `make test` only replays the checked-in corpus.
FUZZTIME ?= 5m

# Extra flags for `make run`, and for `make leaf`.
NODE_FLAGS ?=
LEAF_FLAGS ?=
# Where `make run` serves relay clients, such as `make leaf`; empty: no relay
# (needed with NODE_FLAGS="--model calicov1").
RELAY_LISTEN ?= 127.0.0.1:9096
# Random fault schedules for `make soak` (make test runs 500 on the simulated
# etcd, FAILOVER_SCHEDULES 200 with three relays and leaves checked after every
# callback, and V3_SCHEDULES 50 per etcd version on real etcd 3.5 and 3.7).
SCHEDULES ?= 5000
FAILOVER_SCHEDULES ?= 5000
V3_SCHEDULES ?= 500

.PHONY: help deps etcd build test lint run leaf bench fuzz soak clean

help:
	@echo "make deps   download Go modules"
	@echo "make etcd   build bin/etcd (v3.5.x, --enable-v2) from the pinned module,"
	@echo "            and bin/etcd37 (v3.7.x, v3 API only) from e2e/etcd37"
	@echo "make run    run the reference node on an embedded etcd, relaying on $(RELAY_LISTEN)"
	@echo "make leaf   run a leaf node that syncs from the relay of make run"
	@echo "make test   lint, then every test and spec (race detector on)"
	@echo "make bench  run every measurement on real etcd and rewrite BENCHMARKS.md"
	@echo "make fuzz   fuzz the hwm tracker against its reference model, and the leaf's relay frame reader (FUZZTIME=$(FUZZTIME) each)"
	@echo "make soak   run SCHEDULES=$(SCHEDULES) random fault schedules on the simulated etcd,"
	@echo "            FAILOVER_SCHEDULES=$(FAILOVER_SCHEDULES) with three relays and failing-over leaves,"
	@echo "            and V3_SCHEDULES=$(V3_SCHEDULES) per etcd version on real etcd through the v3 API,"
	@echo "            then fuzz the leaf's relay frame reader for FUZZTIME=$(FUZZTIME)"

# e2e/etcd37 is a module of its own: the main module's download skips it.
deps:
	$(GO) mod download
	cd e2e/etcd37 && $(GO) mod download

# The etcd server is a tool dependency in go.mod, so its version is the one
# pinned there and go.sum covers everything it needs.
$(ETCD): go.mod go.sum
	@mkdir -p bin
	$(GO) build -o $(ETCD) go.etcd.io/etcd/server/v3

# etcd 3.7 cannot share the main module's graph with the 3.5 pin, and
# `go install ...@v3.7.3` is refused (etcd's module has replace directives),
# so it is a tool of the module in e2e/etcd37, pinned by its go.sum. The
# first build takes minutes.
$(ETCD37): e2e/etcd37/go.mod e2e/etcd37/go.sum
	@mkdir -p bin
	cd e2e/etcd37 && $(GO) build -o $(CURDIR)/$(ETCD37) go.etcd.io/etcd/server/v3

etcd: $(ETCD) $(ETCD37)

build:
	$(GO) build ./...

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt -l reports:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	GO=$(GO) bash .ci/layering.sh

# Every package runs under the race detector: the actor packages are
# concurrent, and the pure ones are cheap enough that excluding them would
# only save seconds. The e2e package takes about 8 minutes on a quiet
# 2-core machine and twice that beside a CPU-heavy job; the timeout leaves
# room for the second.
test: lint $(ETCD) $(ETCD37)
	ETCDSYNC_ETCD_BIN=$(CURDIR)/$(ETCD) ETCDSYNC_ETCD37_BIN=$(CURDIR)/$(ETCD37) $(GO) test -race -count=1 -timeout 30m ./...

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

# Every measurement in one run, on real etcd (3.5, and 3.7 for the v3
# source); rewrites BENCHMARKS.md. BENCH_SECTIONS, BENCH_LARGE and the rest:
# see e2e/bench/bench.sh.
bench: $(ETCD) $(ETCD37)
	bash e2e/bench/bench.sh

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzTracker -fuzztime $(FUZZTIME) -fuzzminimizetime 10s ./hwm
	$(GO) test -run '^$$' -fuzz FuzzRelayFeed -fuzztime $(FUZZTIME) -fuzzminimizetime 10s ./actors

# Seeds are printed on failure; ETCDSYNC_SCHEDULE_SEED=<seed> replays one.
soak: $(ETCD) $(ETCD37)
	ETCDSYNC_SCHEDULES=$(SCHEDULES) ETCDSYNC_FAILOVER_SCHEDULES=$(FAILOVER_SCHEDULES) ETCDSYNC_MERGE_SCHEDULES=1000000 $(GO) test -count=1 -timeout 6h \
		-run 'TestE2E|TestMergeRandomSchedules' ./e2e ./actors -ginkgo.label-filter=schedule
	ETCDSYNC_ETCD_BIN=$(CURDIR)/$(ETCD) ETCDSYNC_ETCD37_BIN=$(CURDIR)/$(ETCD37) ETCDSYNC_V3_SCHEDULES=$(V3_SCHEDULES) \
		$(GO) test -count=1 -timeout 6h -run TestE2E ./e2e -ginkgo.label-filter=v3schedule
	$(GO) test -run '^$$' -fuzz FuzzRelayFeed -fuzztime $(FUZZTIME) -fuzzminimizetime 10s ./actors

clean:
	rm -rf bin
