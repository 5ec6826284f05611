# oz secrets — the two commands a new user needs are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

BIN   := $(CURDIR)/bin
TOOLS := $(CURDIR)/.bin
BUF   := $(TOOLS)/buf
export PATH := $(TOOLS):$(PATH)

BINARIES := oz ozgateway ozsecretstored ozresolverd ozauditd ozdev ozmigrate

.PHONY: help
help:
	@echo "make run       build and run the whole system locally (data in \$${OZ_DATA_DIR:-./.oz})"
	@echo "make test      every test, plus generated-code, buf lint and buf breaking checks"
	@echo "make bench     benchmarks, each beside a baseline measured in the same run"
	@echo "make build     build the binaries into bin/"
	@echo "make generate  regenerate Go code and OpenAPI from proto/ (buf, local plugins)"
	@echo "make web       rebuild the web app's bundle (gateway/web/dist) from web/ (npm ci, esbuild)"

## Tools: buf and the protoc plugins are pinned as `tool` dependencies of
## tools/go.mod (kept out of go.work) and installed into .bin/.
$(BUF): tools/go.mod tools/go.sum
	cd tools && GOWORK=off GOBIN=$(TOOLS) go install tool
	@touch $(BUF)

.PHONY: tools
tools: $(BUF)

# The OpenAPI 3 document is converted from protoc-gen-openapiv2's Swagger 2.0
# (an intermediate, not committed) by a Go program, which also validates it.
OPENAPIV2 := $(TOOLS)/openapiv2

.PHONY: generate
generate: $(BUF)
	rm -rf proto/gen $(OPENAPIV2)
	$(BUF) generate
	go run ./gateway/openapi/internal/openapigen -in $(OPENAPIV2)/oz.swagger.json -out gateway/openapi/oz.openapi.json

.PHONY: lint
lint: $(BUF)
	$(BUF) lint
	go vet work
	@out=$$(gofmt -l cli gateway lib services e2e proto/gen); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Fails when `make generate` would change anything that is committed.
.PHONY: check-generated
check-generated: generate
	@if [ -n "$$(git status --porcelain -- proto/gen gateway/openapi)" ]; then \
		echo "generated code is not current; run 'make generate' and commit:"; \
		git status --porcelain -- proto/gen gateway/openapi; exit 1; fi

# Compares the protos with those on main (the merge base with main when on
# another branch). Shallow clones may lack main's history: then it compares
# with main's tip if present, and says so when there is nothing to compare.
.PHONY: breaking
breaking: $(BUF)
	@base=$$(git merge-base HEAD main 2>/dev/null || git rev-parse --verify -q main || git rev-parse --verify -q origin/main || true); \
	if [ -z "$$base" ] || ! git cat-file -e "$$base:proto" 2>/dev/null; then \
		echo "buf breaking: no protos on main yet; nothing to compare"; \
	else \
		echo "buf breaking against $$base"; \
		$(BUF) breaking --against ".git#ref=$$base,subdir=." ; \
	fi

# go build stamps the commit into each binary (for --version) only when
# asked in a workspace: -buildvcs=auto does not in workspace mode. Outside
# a git checkout there is nothing to stamp.
BUILDVCS := $(shell git rev-parse --git-dir >/dev/null 2>&1 && echo true || echo false)

.PHONY: build
build:
	@mkdir -p $(BIN)
	go build -buildvcs=$(BUILDVCS) -o $(BIN)/oz ./cli/cmd/oz
	go build -buildvcs=$(BUILDVCS) -o $(BIN)/ozgateway ./gateway/cmd/ozgateway
	go build -buildvcs=$(BUILDVCS) -o $(BIN)/ozsecretstored ./services/cmd/ozsecretstored
	go build -buildvcs=$(BUILDVCS) -o $(BIN)/ozresolverd ./services/cmd/ozresolverd
	go build -buildvcs=$(BUILDVCS) -o $(BIN)/ozauditd ./services/cmd/ozauditd
	go build -buildvcs=$(BUILDVCS) -o $(BIN)/ozdev ./services/cmd/ozdev
	go build -buildvcs=$(BUILDVCS) -o $(BIN)/ozmigrate ./services/cmd/ozmigrate

.PHONY: run
run: build
	$(BIN)/ozdev

## The web app: TypeScript sources in web/, bundled by esbuild (pinned in
## web/package-lock.json) into gateway/web/dist, which is committed and
## embedded by the gateway, so `go build` needs no Node.js.
WEB_DIST := gateway/web/dist

.PHONY: web
web:
	cd web && npm ci --no-audit --no-fund && npm run --silent typecheck && node build.mjs ../$(WEB_DIST)

# Fails when the committed bundle is not what the sources build.
.PHONY: check-web
check-web:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	cd web && npm ci --no-audit --no-fund --loglevel=error && npm run --silent typecheck && \
	node build.mjs "$$tmp/dist" && \
	if ! diff -r "$$tmp/dist" ../$(WEB_DIST) >/dev/null; then \
		echo "the web bundle is not current; run 'make web' and commit $(WEB_DIST):"; \
		diff -rq "$$tmp/dist" ../$(WEB_DIST); exit 1; fi; \
	echo "web bundle: current"

# `go test work` tests every module of the workspace (`./...` would not).
.PHONY: test
test: check-generated lint breaking check-web
	go test -count=1 -timeout 20m work

.PHONY: bench
bench: build
	go run ./e2e/cmd/ozbench
	@echo; echo "== secretstore: durable creates through the service, audit=on vs audit=off (outbox write removed; target: on >= 80% of off at 64), vs raw bbolt Batch (same run) =="
	cd services && go test -run '^$$' -bench 'CreateBolt|RawBatchBolt' -benchtime 3s ./secretstore/kvstore/
	@echo; echo "== secretstore on etcd: the same creates on one embedded etcd member and on three (compare with the bbolt ones above) =="
	cd services && go test -run '^$$' -bench 'CreateEtcd' -benchtime 2s ./secretstore/kvstore/
	@echo; echo "== resolver: run resolutions with auditing on vs the outbox write removed, 1 and 64 runners (same run; target: on >= 80% of off at 64) =="
	cd services && go test -run '^$$' -bench 'ResolveRun' -benchtime 2s ./resolver/runs/
	@echo; echo "== oz exec relay: 100 values masked vs masking off, ~100 MB (same run) =="
	cd cli && go test -run '^$$' -bench 'Relay' ./internal/mask/
	@echo; echo "== egress proxy: 16 clients through the proxy with substitution vs straight to the server (same run; target >= 0.3) =="
	cd cli && go test -run '^$$' -bench 'Proxy' -benchtime 3000x ./internal/egress/
	@echo; echo "== egress proxy: a bound host's WebSocket frames relayed masked vs as they are, from loopback TCP (same run) =="
	cd cli && go test -run '^$$' -bench 'WebSocketMask' -benchtime 20x ./internal/egress/
	@echo; echo "== secretstore: a listing of 1,000 secrets, protobuf records vs the JSON of older stores (same run) =="
	cd services && go test -run '^$$' -bench 'ListBolt' ./secretstore/kvstore/
	@echo; echo "== audit: appends of 1, 100 and 1,000 events, from 1 and 4 goroutines, on bbolt and on etcd of one and three members (events/s) =="
	cd services && go test -run '^$$' -bench 'Append' -benchtime 2s ./audit/kvstore/
