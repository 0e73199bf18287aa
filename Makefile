# rh — see README.md. `make demo` runs the main job; `make test` passes the tests.
GO       ?= go
BIN      ?= bin
PKGS     ?= ./...
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/rhq/rh/internal/cli.Version=$(VERSION)
FUZZTIME ?= 5s

.PHONY: build test test-deps unit fuzz promtool faults bench lint demo clean

# rhcli for this machine, plus the node agent's builds for Linux nodes of either
# architecture: the gateway places rhcli-linux-<arch> from beside its own binary.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/rhcli ./cmd/rhcli
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/rhcli-linux-amd64 ./cmd/rhcli
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/rhcli-linux-arm64 ./cmd/rhcli

# The README's test command: machine prerequisites, vet, the compose
# stack's Prometheus configuration and alerting rules, the race-checked
# suite, and a short run of every fuzz target.
test: test-deps lint promtool unit fuzz

test-deps:
	@scripts/install-test-deps.sh

# Four packages at once on two cores: most tests wait on sshd, NATS and the
# simulators rather than compute, so this is the shortest wall clock.
unit:
	$(GO) test -race -count=1 -p 4 -timeout 15m $(PKGS)

fuzz:
	@scripts/fuzz.sh $(FUZZTIME)

# promtool is Debian's prometheus package's (test-deps installs it).
PROMDIR := deploy/compose/prometheus
promtool:
	promtool check config $(PROMDIR)/prometheus.yml
	promtool test rules $(PROMDIR)/rules_test.yml

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) vet -tags faults ./faults

# The fault suite (faults/, issue 10): a three-node NATS cluster of
# nats-server processes, every service its own process with --replicas 3,
# processes killed with -9. Minutes long, so behind the "faults" build tag
# (go test ./... skips it); CI runs it after make test.
faults: test-deps
	$(GO) test -tags faults -count=1 -timeout 30m -v ./faults

bench: test-deps
	@scripts/bench.sh

demo: build
	@scripts/demo.sh $(BIN)/rhcli

clean:
	rm -rf $(BIN)
