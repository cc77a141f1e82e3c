# Palaver — developer entry points. `make help` lists the targets.
#
# Variables. Each has a default; override in the environment or on the command line
# (make test PALAVER_REDIS_URL=redis://127.0.0.1:6380). All are exported to the scripts
# in scripts/ (whose lib.sh repeats the defaults for running a script by hand).
#
#   PALAVER_DATABASE_URL       postgres://postgres@127.0.0.1:5432/palaver
#                              Dev database: make dev/bench, palaver-operator, palaverd. `make up`
#                              creates it if missing. Not passed to the tests.
#   PALAVER_TEST_DATABASE_URL  postgres://postgres@127.0.0.1:5432/palaver_test
#                              Database of the test suite. `make up` creates it if missing.
#   PALAVER_REDIS_URL          redis://127.0.0.1:6379
#   PALAVER_KAFKA_BROKERS      127.0.0.1:9092
#                              Kafka bootstrap list; `make up` checks and, if needed, starts a
#                              local Apache Kafka broker on its first entry.
#   KAFKA_VERSION              4.4.0 — the pinned Apache Kafka release `make deps` installs (its
#                              jars from Maven Central, scripts/kafka/pom.xml).
#   KAFKA_ROOT                 $(HOME)/.local/share/palaver/kafka-$(KAFKA_VERSION)
#                              the install (lib/ of jars), outside the repository: every clone on
#                              the machine (CI too) shares it. scripts/kafka.sh runs a broker from
#                              it; tests use that script to start private brokers.
#   KAFKA_CONTROLLER_PORT      9093 — KRaft controller listener of the `make up` broker (loopback).
#   KAFKA_HEAP_OPTS            -Xms256m -Xmx512m — JVM heap of every local broker.
#   PALAVER_S3_ENDPOINT        http://127.0.0.1:7070
#                              S3-compatible object storage of file attachments (path-style URLs);
#                              `make up` checks and, if nothing answers there, starts a local
#                              versitygw on its host:port (loopback, plain HTTP), data in
#                              $(DEV_DIR)/s3/data.
#   PALAVER_S3_BUCKET          palaver — the attachments bucket; `make up` creates it if missing.
#   PALAVER_S3_REGION          us-east-1 — the region requests are signed for.
#   PALAVER_S3_ACCESS_KEY_ID   palaver-dev
#   PALAVER_S3_SECRET_ACCESS_KEY  palaver-dev-secret-key
#                              credentials of the S3 server: dev-only values, the root account of
#                              the local versitygw (`make up` starts it with them). Never use them
#                              for a real object store. The pods of make dev/bench and the tests
#                              get all five PALAVER_S3_* settings.
#   VERSITYGW_VERSION          v1.8.0 — the pinned Versity S3 Gateway (Apache-2.0) `make deps`
#                              builds (go install of Go module github.com/versity/versitygw).
#   VERSITYGW_ROOT             $(HOME)/.local/share/palaver/versitygw-$(VERSITYGW_VERSION) — its
#                              install (bin/versitygw), outside the repository, shared by every
#                              clone; the e2e harness runs private instances from it (PrivateS3).
#   CHART_TOOLS_ROOT           $(HOME)/.local/share/palaver/chart-tools-<hash of the pins> — the
#                              Python venv of the chart check (scripts/chart-tools.txt), outside
#                              the repository; scripts/lib.sh computes the default.
#   HELM_VERSION               v3.22.0 — the helm `make deps-test` builds (Go module
#                              helm.sh/helm/v3) for the chart check's lint and template.
#   HELM_ROOT                  $(HOME)/.local/share/palaver/helm-$(HELM_VERSION) — its install
#                              (bin/helm), outside the repository, shared by every clone.
#   PROMTOOL_VERSION           v0.316.0 — the Go module version of Prometheus (3.16.0) whose
#                              promtool `make deps-test` builds, for the alert rules' checks and
#                              unit tests.
#   PROMTOOL_ROOT              $(HOME)/.local/share/palaver/promtool-$(PROMTOOL_VERSION) — its
#                              install (bin/promtool), outside the repository.
#   KUBE_VERSION               1.33.13 — the pinned Kubernetes release of the operator tests'
#                              API server; `make deps-test` builds kube-apiserver,
#                              kube-controller-manager and kubectl of it from the Go module proxy
#                              (wrapper module scripts/kube: go.mod pins, go.sum checksums).
#   ETCD_VERSION               3.5.21 — the etcd those tests store in, built the same way.
#   KUBE_TOOLS_ROOT            $(HOME)/.local/share/palaver/kube-$(KUBE_VERSION) — their install
#                              (bin/), outside the repository, shared by every clone on the
#                              machine; the e2e harness (e2e/src/kube_server.rs) runs them.
#   GATEWAY_API_VERSION        v1.6.3 — the Gateway API release whose HTTPRoute CRD the operator
#                              tests install (Go module sigs.k8s.io/gateway-api, standard channel).
#   GATEWAY_API_ROOT           $(HOME)/.local/share/palaver/gateway-api-$(GATEWAY_API_VERSION) —
#                              where `make deps-test` puts that CRD (httproutes.yaml), outside the
#                              repository; e2e/tests/operator_exposure.rs reads it from there.
#   NGINX_BIN                  /usr/sbin/nginx — the nginx the ingress tests (e2e/tests/ingress.rs)
#                              run privately on loopback in front of pods; `make deps-test`
#                              installs Debian's nginx-light when it is missing.
#   CHROMIUM_BIN               /usr/bin/chromium — the browser of the web app's tests
#                              (e2e/tests/web.rs, driven by playwright-core); `make deps-test`
#                              installs Debian's chromium when it is missing.
#   DEV_DIR                    $(CURDIR)/.dev (gitignored) — logs, pids/<name>.pid (the services,
#                              and make dev's pods pod-a and pod-b while it runs), data of the
#                              project-local Postgres, Redis, Kafka (kafka/data) and S3 (s3/data).
#   UP_TIMEOUT                 60 — seconds `make up` waits for each service to answer (a first
#                              Kafka start took over 30 s on a busy 2-core machine).
#   PALAVER_DEV_JWT_SECRET     palaver-dev-secret-change-me — token secret of the dev and bench pods
#                              and of `palaverd token`.
#   RUST_LOG                   log filter of the pods: info for make dev, warn for make bench.
#   DEV_WORKSPACE              demo — workspace make dev provisions.
#   DEV_LISTEN_A, DEV_LISTEN_B 127.0.0.1:8081, 127.0.0.1:8082 — the make dev pods pod-a, pod-b.
#   BENCH_WORKSPACE            bench — workspace make bench provisions (BENCH_PARTITIONS: 3).
#   BENCH_LISTEN_A, BENCH_LISTEN_B  127.0.0.1:8091, 127.0.0.1:8092 — the release pods of make bench.
#   BENCH_ARGS                 the palaver-bench command line (default below: the send scenario;
#                              `reads …` and `presence …` run the other scenarios, docs/benchmarks.md).
#   NEXTEST_PROFILE            `ci` when CI is true/1/yes, else `default` (.config/nextest.toml).
#   CARGO                      cargo
#
# Services: `make up` reuses a Postgres, Redis, broker or S3 server that already answers on its
# address and starts only the missing ones (loopback only); `make down` stops only
# those, by the PIDs recorded in $(DEV_DIR)/pids. make test/dev/bench run `up`
# themselves and, when they finish, stop what they started; run `make up` first to
# keep the stack between runs.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
# The targets chain deps -> build -> up -> run: never run them side by side.
.NOTPARALLEL:

PALAVER_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/palaver
PALAVER_TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/palaver_test
PALAVER_REDIS_URL ?= redis://127.0.0.1:6379
PALAVER_KAFKA_BROKERS ?= 127.0.0.1:9092
KAFKA_VERSION ?= 4.4.0
KAFKA_ROOT ?= $(HOME)/.local/share/palaver/kafka-$(KAFKA_VERSION)
KAFKA_CONTROLLER_PORT ?= 9093
KAFKA_HEAP_OPTS ?= -Xms256m -Xmx512m
PALAVER_S3_ENDPOINT ?= http://127.0.0.1:7070
PALAVER_S3_BUCKET ?= palaver
PALAVER_S3_REGION ?= us-east-1
PALAVER_S3_ACCESS_KEY_ID ?= palaver-dev
PALAVER_S3_SECRET_ACCESS_KEY ?= palaver-dev-secret-key
VERSITYGW_VERSION ?= v1.8.0
VERSITYGW_ROOT ?= $(HOME)/.local/share/palaver/versitygw-$(VERSITYGW_VERSION)
HELM_VERSION ?= v3.22.0
HELM_ROOT ?= $(HOME)/.local/share/palaver/helm-$(HELM_VERSION)
PROMTOOL_VERSION ?= v0.316.0
PROMTOOL_ROOT ?= $(HOME)/.local/share/palaver/promtool-$(PROMTOOL_VERSION)
DEV_DIR ?= $(CURDIR)/.dev
UP_TIMEOUT ?= 60
PALAVER_DEV_JWT_SECRET ?= palaver-dev-secret-change-me
DEV_WORKSPACE ?= demo
DEV_LISTEN_A ?= 127.0.0.1:8081
DEV_LISTEN_B ?= 127.0.0.1:8082
BENCH_WORKSPACE ?= bench
BENCH_PARTITIONS ?= 3
BENCH_LISTEN_A ?= 127.0.0.1:8091
BENCH_LISTEN_B ?= 127.0.0.1:8092
BENCH_ARGS ?= --pods ws://$(BENCH_LISTEN_A),ws://$(BENCH_LISTEN_B) --workspace $(BENCH_WORKSPACE) \
	--rate 2000 --duration 60 --channels 50 --members 10
NEXTEST_PROFILE ?= $(if $(filter true 1 yes,$(CI)),ci,default)
KUBE_VERSION ?= 1.33.13
ETCD_VERSION ?= 3.5.21
KUBE_TOOLS_ROOT ?= $(HOME)/.local/share/palaver/kube-$(KUBE_VERSION)
GATEWAY_API_VERSION ?= v1.6.3
GATEWAY_API_ROOT ?= $(HOME)/.local/share/palaver/gateway-api-$(GATEWAY_API_VERSION)
CARGO ?= cargo
# When this make started (epoch seconds): `make dev` reports its time to ready from here, deps
# and build included. Set once, so recipes and nested makes share it.
ifndef PALAVER_MAKE_T0
PALAVER_MAKE_T0 := $(shell date +%s)
endif

export PALAVER_DATABASE_URL PALAVER_TEST_DATABASE_URL PALAVER_REDIS_URL PALAVER_KAFKA_BROKERS \
	KAFKA_VERSION KAFKA_ROOT KAFKA_CONTROLLER_PORT KAFKA_HEAP_OPTS HELM_VERSION HELM_ROOT \
	PALAVER_S3_ENDPOINT PALAVER_S3_BUCKET PALAVER_S3_REGION PALAVER_S3_ACCESS_KEY_ID \
	PALAVER_S3_SECRET_ACCESS_KEY VERSITYGW_VERSION VERSITYGW_ROOT \
	PROMTOOL_VERSION PROMTOOL_ROOT DEV_DIR UP_TIMEOUT \
	PALAVER_DEV_JWT_SECRET DEV_WORKSPACE DEV_LISTEN_A DEV_LISTEN_B \
	BENCH_WORKSPACE BENCH_PARTITIONS BENCH_LISTEN_A BENCH_LISTEN_B BENCH_ARGS \
	KUBE_VERSION ETCD_VERSION KUBE_TOOLS_ROOT GATEWAY_API_VERSION GATEWAY_API_ROOT NEXTEST_PROFILE CARGO PALAVER_MAKE_T0

.PHONY: help deps deps-test up down build test dev bench lint

help:
	@printf '%s\n' \
	  'make deps   install what running needs: PostgreSQL, Redis, Java, Maven, curl (apt-get), Apache Kafka $(KAFKA_VERSION) (Maven Central), the S3 server versitygw $(VERSITYGW_VERSION) (go install, Go module proxy), the clients npm packages (npm ci in clients/)' \
	  'make deps-test  install what only the tests need: cargo-nextest, the chart tools (pip), helm $(HELM_VERSION) and promtool (go install), kube-apiserver, kube-controller-manager, kubectl $(KUBE_VERSION) and etcd $(ETCD_VERSION), the Gateway API $(GATEWAY_API_VERSION) HTTPRoute CRD (Go module proxy), nginx and chromium (apt-get)' \
	  'make up     start the missing services on loopback (Postgres, Redis, Kafka, S3), create the databases and the bucket (idempotent)' \
	  'make down   stop what make up started, nothing else' \
	  'make build  the web app and SDK (npm run build in clients/, skipped without Node 20.19+), then cargo build --workspace --bins' \
	  'make test   deps + deps-test + up, then the SDK unit tests, the chart check and cargo nextest run --workspace --no-fail-fast' \
	  'make dev    deps + a debug build of palaverd and palaver-operator + up, provision "$(DEV_WORKSPACE)", run and supervise pods on $(DEV_LISTEN_A) and $(DEV_LISTEN_B)' \
	  'make bench  deps + release build + up, two release pods, palaver-bench $(BENCH_ARGS)' \
	  'make lint   cargo clippy -D warnings and cargo fmt --check' \
	  'Variables and their defaults: see the top of the Makefile.'

deps:
	@bash scripts/deps.sh

deps-test:
	@bash scripts/deps-test.sh

up:
	@bash scripts/up.sh

down:
	@bash scripts/down.sh

build:
	@bash scripts/build.sh

test: deps deps-test
	@bash scripts/test.sh

dev: deps
	@bash scripts/build.sh palaverd palaver-operator
	@bash scripts/dev.sh

bench: deps
	@bash scripts/bench.sh

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) fmt --all --check
