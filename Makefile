# iochub — see README.md. `make run` and `make test` work on a fresh Debian machine.
SHELL   := /bin/bash
GO      ?= go
DATA_DIR ?= .data
DEV_TOKEN := dev-producer-token-not-for-production
DEV_READER_TOKEN := dev-reader-token-not-for-production
MQTT_PORT ?= 11883
HTTP_ADDR ?= 127.0.0.1:8080
CH_DATABASE ?= iochub
# -race where it fits the time budget of `make test`.
RACE    ?= -race
export GOFLAGS ?= -buildvcs=false

.PHONY: vendor chromium build install run test bench bench-jsonschema lint clickhouse clickhouse-stop zookeeper clean

build: bin/iochub bin/iochub-sim

SOURCES := go.mod go.sum $(shell find pkg schemas kpis services sim -name '*.go' -o -name '*.json' -o -name '*.yaml' -o -name '*.html' -o -name '*.js' -o -name '*.css' 2>/dev/null)

bin/iochub: $(SOURCES)
	@mkdir -p bin
	@[ -x bin/iochub ] || echo "build: compiling bin/iochub (the first build downloads Go modules and takes minutes on a small machine)"
	$(GO) build -ldflags "-X github.com/iochub/iochub/services/iochub/internal/hub.buildVersion=$$(git describe --always --dirty 2>/dev/null || echo dev)" -o bin/iochub ./services/iochub

# The simulated sector systems `make run` starts beside the hub: a binary of
# their own, so bin/iochub carries no simulator and no MQTT client.
bin/iochub-sim: $(SOURCES)
	@mkdir -p bin
	$(GO) build -o bin/iochub-sim ./sim/cmd/iochub-sim

# Installs both binaries into $(PREFIX)/bin.
PREFIX ?= /usr/local
install: build
	install -d $(PREFIX)/bin
	install -m 0755 bin/iochub bin/iochub-sim $(PREFIX)/bin/

clickhouse:
	@deploy/clickhouse/ensure.sh $(DATA_DIR)

zookeeper:
	@deploy/zookeeper/ensure.sh

clickhouse-stop:
	@deploy/clickhouse/stop.sh $(DATA_DIR)

run: build clickhouse
	@echo
	@echo "  iochub gateway:     http://$(HTTP_ADDR)/v1/events"
	@echo "  dev producer token: $(DEV_TOKEN)"
	@echo "  try:  curl -H 'Authorization: Bearer $(DEV_TOKEN)' -H 'Content-Type: application/cloudevents-batch+json' \\"
	@echo "          --data @schemas/health/examples/visit.v1.valid.json http://$(HTTP_ADDR)/v1/events"
	@echo
	@echo "  IOC dashboard:      http://$(HTTP_ADDR)/#token=$(DEV_READER_TOKEN)"
	@echo "  dev reader token:   $(DEV_READER_TOKEN)  (leader: every sector; simulated sector systems fill the tiles)"
	@echo "  ops page:           http://$(HTTP_ADDR)/ops#token=dev-admin-token-not-for-production  (metrics: the same token, as a bearer token, on http://$(HTTP_ADDR)/metrics)"
	@echo "  dead letters:       bin/iochub dlq list --nats-url nats://dev-ops:dev-nats-password-not-for-production@127.0.0.1:4222"
	@echo
	@echo "  starting bin/iochub-sim (simulated sector systems) and bin/iochub run; Ctrl-C stops both"
	@echo
	@bin/iochub-sim --config deploy/iochub.dev.yaml --data-dir $(DATA_DIR)/hub --mqtt 127.0.0.1:$(MQTT_PORT) --hub http://$(HTTP_ADDR) & \
	trap 'kill $$! 2>/dev/null; wait $$! 2>/dev/null' EXIT; \
	bin/iochub run --mqtt-listen 127.0.0.1:$(MQTT_PORT) --config deploy/iochub.dev.yaml --data-dir $(DATA_DIR)/hub --http-addr $(HTTP_ADDR) \
		--clickhouse-dsn clickhouse://127.0.0.1:9000/$(CH_DATABASE)

test: clickhouse zookeeper chromium
	$(GO) vet ./...
	$(GO) test $(RACE) -count=1 -timeout 12m ./...
	cd tools/jsonschemabench && $(GO) vet ./... && $(GO) test -count=1 ./...

# The hub end to end beside its parts, the drain of a backlog, the KPI
# queries (bench-results/, and a dated copy in docs/bench/ to commit), then
# the validator comparisons: jsonschema v5 against v6 (decision 0001) and
# the reference against the generated validators (decision 0008).
BENCH_STAMP := $(shell date -u +%Y%m%dT%H%M)
bench: build clickhouse
	@rm -f bench-results/bench.json bench-results/kpi.json
	cd services/iochub && $(GO) run ./cmd/iochub-bench -out ../../bench-results $(BENCH_FLAGS)
	@mkdir -p docs/bench
	@if [ -f bench-results/bench.json ]; then cp bench-results/bench.json docs/bench/$(BENCH_STAMP)-bench.json; fi
	@if [ -f bench-results/kpi.json ]; then cp bench-results/kpi.json docs/bench/$(BENCH_STAMP)-kpi.json; fi
	@$(MAKE) --no-print-directory bench-jsonschema
	$(GO) test -run '^$$' -bench Validate -benchtime 1s ./pkg/schema | tee bench-results/compiled-schemas.txt
	$(GO) test -run '^$$' -bench Insert -benchtime 20x ./pkg/chstore | tee bench-results/chstore-insert.txt
	$(GO) test -run '^$$' -bench PublishReplicas -benchtime 30x ./pkg/natsjs | tee bench-results/jetstream-replicas.txt

bench-jsonschema:
	@mkdir -p bench-results
	cd tools/jsonschemabench && $(GO) test -run '^$$' -bench . -benchtime 1s . | tee ../../bench-results/jsonschema.txt

# Debian's chromium for the dashboard's browser tests (installed when missing
# and we are root; otherwise says how).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then \
			echo "chromium: installing Debian's chromium package"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-noto-core >/dev/null; \
		else echo "chromium: missing; install it with: sudo apt-get install chromium fonts-noto-core"; exit 1; fi; }

lint:
	@out=$$(gofmt -l pkg schemas kpis services sim internal tools); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd tools/jsonschemabench && $(GO) vet ./...

clean:
	rm -rf bin bench-results

# The browser libraries embedded with the pages (services/iocapi/web/vendor):
# fetched with npm pack, checked against the integrity recorded there.
ECHARTS_VERSION := 6.1.0
ECHARTS_INTEGRITY := sha512-q0yaFPggC9FUdsWH4blavRWFmxdrIodbkoKNAjJudAI6CA9gNPxHtV2RcZNEepZVlk4yvBYkOkbk6HIVpIyHZA==
vendor:
	@tmp=$$(mktemp -d) && cd $$tmp && npm pack --silent echarts@$(ECHARTS_VERSION) >/dev/null && \
	got="sha512-$$(openssl dgst -sha512 -binary echarts-$(ECHARTS_VERSION).tgz | base64 -w0)" && \
	if [ "$$got" != "$(ECHARTS_INTEGRITY)" ]; then echo "vendor: echarts-$(ECHARTS_VERSION).tgz has integrity $$got, not the recorded one"; exit 1; fi && \
	tar xzf echarts-$(ECHARTS_VERSION).tgz && cd - >/dev/null && \
	cp $$tmp/package/dist/echarts.min.js services/iocapi/web/vendor/echarts.min.js && \
	cp $$tmp/package/LICENSE services/iocapi/web/vendor/echarts.LICENSE && \
	cp $$tmp/package/NOTICE services/iocapi/web/vendor/echarts.NOTICE && rm -rf $$tmp && \
	echo "vendor: echarts $(ECHARTS_VERSION) in services/iocapi/web/vendor"
