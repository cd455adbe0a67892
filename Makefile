# caguard build. `make run` and `make test` are all a new machine needs (Go and gcc come with it).
GO        ?= go
GOFLAGS   ?=
SCENARIO  ?= scripts/scenarios/drifted.json
MODE      ?= remediate
BENCHTIME ?= 1s
FUNCTIONS := $(notdir $(wildcard functions/*))

.PHONY: all help build test lint lint-infra bench bench-e2e bench-fleet run fuzz clean docs-images

all: lint test build

## help: list the targets and what each does
help:
	@awk '/^## [a-z0-9-]+:/ { sub(/^## /, ""); name = $$0; sub(/:.*/, "", name); text = $$0; sub(/^[a-z0-9-]+: */, "", text); printf "  %-12s %s\n", name, text; next } \
		/^## / { sub(/^## /, ""); printf "  %-12s %s\n", "", $$0 }' $(MAKEFILE_LIST)

# What `make build` stages in dist/. Only these are replaced: dist/local.settings.json and the demo's
# output in dist/demo/ survive a build.
STAGED := dist/handler dist/host.json $(addprefix dist/,$(FUNCTIONS))

## build: stage a deployable app in dist/ (host.json, one folder per function, the handler for linux/amd64);
## replaces only those, so dist/local.settings.json and dist/demo/ survive
build:
	rm -rf $(STAGED)
	mkdir -p dist
	@echo "building dist/handler (the first build compiles msgraph-sdk-go: about 4 minutes on two cores; later builds take seconds)"
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build $(GOFLAGS) -trimpath -ldflags='-s -w' -o dist/handler ./handler
	cp host.json dist/host.json
	for f in $(FUNCTIONS); do mkdir -p dist/$$f && cp functions/$$f/function.json dist/$$f/function.json; done
	@echo "staged dist/: $$(cd dist && ls -d host.json handler $(FUNCTIONS) | tr '\n' ' ')"

# The race detector needs cgo, hence a C compiler; without one the tests still run, and say so.
RACE := $(shell command -v gcc >/dev/null 2>&1 && echo -race)
# The HTML report is rendered in headless Chromium by a test; without it that test skips.
CHROMIUM := $(shell command -v chromium || command -v chromium-browser || command -v google-chrome)

# Azurite (the Azure Storage emulator) runs the tests of the cross-instance writer lease. It is pinned in
# .ci/package-lock.json and installed into .ci/node_modules (ignored by git) when npm is there; without
# Node.js those tests skip and say so.
NPM         := $(shell command -v npm 2>/dev/null)
AZURITE_STAMP := .ci/node_modules/.installed

## test: every test, with the race detector
test: $(if $(NPM),$(AZURITE_STAMP))
	@[ -n "$(RACE)" ] || echo "warning: no gcc, so no race detector; apt-get install gcc to enable it" >&2
	@[ -n "$(CHROMIUM)" ] || echo "warning: no chromium, so the report is not rendered in a browser; apt-get install chromium to enable it" >&2
	@[ -n "$(NPM)" ] || echo "warning: no npm, so no Azurite: the storage lease tests skip; install Node.js and npm to run them" >&2
	@echo "testing every package (the first run compiles msgraph-sdk-go with the race detector: several minutes on two cores; later runs reuse the cache)"
	$(GO) test $(GOFLAGS) $(RACE) -count=1 ./...

$(AZURITE_STAMP): .ci/package.json .ci/package-lock.json
	npm ci --prefix .ci --no-audit --no-fund --loglevel=error && touch $@ || \
		echo "warning: npm ci --prefix .ci failed: the storage lease tests will skip" >&2

## lint: formatting and vet
lint:
	@out=$$(gofmt -l handler scripts); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@echo "go vet (the first run compiles msgraph-sdk-go: minutes on two cores)"
	$(GO) vet $(GOFLAGS) ./...

## lint-infra: KICS over infra/*.bicep, offline (pinned in tools/kics/go.mod, a module of its own, built
## once into bin/kics), failing on any finding not in tools/kics/exclusions.txt; then the Go tests that
## parse infra/ and the scripts for what the handler needs and for the Graph permission sets
KICS        := bin/kics
# The queries and libraries come from the pinned module's source in the module cache (fetched through
# the module proxy like any module; a no-op offline once cached), so a reused bin/kics never scans with
# an empty query path after the cache was cleaned.
KICS_ASSETS  = $(shell cd tools/kics && $(GO) mod download github.com/Checkmarx/kics/v2 && $(GO) list -m -f '{{.Dir}}' github.com/Checkmarx/kics/v2)/assets
lint-infra: $(KICS)
	$(KICS) scan --ci --no-progress --disable-secrets --type AzureResourceManager -p infra \
		-q $(KICS_ASSETS)/queries --libraries-path $(KICS_ASSETS)/libraries \
		--exclude-queries $$(grep -v '^#' tools/kics/exclusions.txt | awk 'NF { print $$1 }' | paste -sd, -) \
		-o dist/kics --report-formats json
	$(GO) test $(GOFLAGS) -count=1 -run 'Infra|Bicep|Permission|Grant' ./handler/config/ ./handler/graph/

# Cold build (empty GOCACHE, GOPROXY=off, -mod=readonly: the module cache alone suffices), measured
# 2026-12-07 on the shared 2-core machine under load: 14 min 26 s wall, 514 s user + 171 s system CPU,
# 1.9 GB peak memory, 1.3 GB of build cache. Later builds reuse bin/kics or the build cache.
$(KICS): tools/kics/go.mod tools/kics/go.sum
	cd tools/kics && $(GO) build -trimpath -o ../../$(KICS) github.com/Checkmarx/kics/v2/cmd/console

## bench: every benchmark, six times each, for benchstat
bench:
	$(GO) test $(GOFLAGS) -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count 6 ./handler/... | tee bench.out

## bench-fleet: one process sweeps a registry of FLEETSIZE tenants (default 1000) against Graph emulated in
## another process with FLEETLATENCY (default 100ms) added to every round trip: wall time, round trips per
## tenant, peak memory, requests in flight per tenant (docs/BENCHMARKS.md)
FLEETSIZE     ?= 1000
FLEETLATENCY  ?= 100ms
FLEETPARALLEL ?= 32
bench-fleet:
	$(GO) test $(GOFLAGS) -count=1 -run '^$$' -bench '^BenchmarkFleetSweep$$' -benchtime 1x -timeout 30m ./handler/fleet/ \
		-args -fleet -fleet.tenants=$(FLEETSIZE) -fleet.latency=$(FLEETLATENCY) -fleet.parallel=$(FLEETPARALLEL)

## bench-e2e: caguard's throughput on a batch of audit noise through the real HTTP path, beside a
## handler that only reads the body (the ceiling) and a plain encoding/json one (docs/BENCHMARKS.md)
bench-e2e: build
	$(GO) build $(GOFLAGS) -o dist/benche2e ./scripts/benche2e
	dist/benche2e -handler dist/handler

## fuzz: each fuzz target for 30 seconds
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzEnvelope$$' -fuzztime 30s ./handler/azfunc
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeBatch$$' -fuzztime 30s ./handler/auditlog
	$(GO) test -run '^$$' -fuzz '^FuzzScanNoise$$' -fuzztime 30s ./handler/auditlog
	$(GO) test -run '^$$' -fuzz '^FuzzEvaluate$$' -fuzztime 30s ./handler/capolicy

## run: the local demo — the handler against the built-in tenant emulator, driven like the Functions host;
## writes every alert (Teams card, Slack message) and the report page to dist/demo/
run: build
	$(GO) run ./scripts/localrun -handler dist/handler -scenario $(SCENARIO) -mode $(MODE) -out dist/demo

## docs-images: regenerate docs/report.png and docs/alert-card.png from a real demo run (make run), in
## headless Chromium: the report page as served, and the incident's Teams card as caguard sent it
docs-images: run
	@[ -n "$(CHROMIUM)" ] || { echo "docs-images needs chromium (apt-get install chromium)" >&2; exit 1; }
	$(GO) run ./scripts/cardpreview -in dist/demo/alert-01-audit-event-teams.json -out dist/demo/card.html
	$(CHROMIUM) --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1000,1900 \
		--screenshot=$(CURDIR)/docs/report.png file://$(CURDIR)/dist/demo/report.html 2>/dev/null
	$(CHROMIUM) --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=800,1100 \
		--screenshot=$(CURDIR)/docs/alert-card.png file://$(CURDIR)/dist/demo/card.html 2>/dev/null
	@echo "wrote docs/report.png and docs/alert-card.png"

## clean: remove dist/ (local settings and demo output included), bench.out and .ci/node_modules
clean:
	rm -rf dist bench.out .ci/node_modules
