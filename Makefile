# Polku's developer commands. `make test` on a fresh clone installs and starts everything it needs.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
# The Quix Streams peer of bench.stager needs an environment of its own: quixstreams 3.28
# refuses the pydantic and pydantic-settings that requirements.lock pins (bench/requirements.txt).
PEER_VENV := .venv-peer
PEER_STAMP := $(PEER_VENV)/.installed-$(shell cat requirements.lock bench/requirements.txt | cksum | cut -d' ' -f1)

.PHONY: install infra browser kustomize prometheus test up down logs lint bench bench-peer run clean

$(STAMP): requirements.lock pyproject.toml
	@rm -f $(VENV)/.installed-*
	@test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

install: $(STAMP)  ## Python environment from the lock file

run: install  ## all of Polku in one process (SQLite, no Kafka/PostgreSQL/Java), with demo traffic
	$(BIN)/polku dev --demo

infra: install  ## PostgreSQL and Kafka, installed and started if needed
	bash deploy/local/postgres.sh start
	bash deploy/local/kafka.sh start

browser:  ## Debian's Chromium and ChromeDriver, for the console's browser tests
	bash deploy/local/browser.sh install

kustomize:  ## kustomize, built from the Go module proxy, to render deploy/k8s for its tests
	bash deploy/local/kustomize.sh install

prometheus:  ## Debian's Prometheus and promtool, for the tests of the alert rules and dashboard
	bash deploy/local/prometheus.sh install

test: infra browser kustomize prometheus  ## the whole suite against the real broker and database, the console in Chromium
	$(BIN)/pytest -q -p no:cacheprovider

up: infra  ## Kafka, PostgreSQL and the three services, in the background
	$(BIN)/polku db upgrade
	bash deploy/local/services.sh start

down:  ## stop everything `make up` started
	bash deploy/local/services.sh stop
	bash deploy/local/kafka.sh stop
	bash deploy/local/postgres.sh stop

logs:
	tail -n 40 -F .polku/logs/*.log

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy shared services

$(PEER_STAMP): requirements.lock bench/requirements.txt
	@rm -f $(PEER_VENV)/.installed-*
	@test -x $(PEER_VENV)/bin/python || python3 -m venv $(PEER_VENV)
	@grep -v -E '^pydantic(_core|-settings)?==' requirements.lock > $(PEER_VENV)/constraints.txt
	$(PEER_VENV)/bin/pip install -q --disable-pip-version-check -c $(PEER_VENV)/constraints.txt -r bench/requirements.txt
	@touch $@

bench-peer: $(PEER_STAMP)  ## the Quix Streams peer's own environment (bench only)

bench: infra bench-peer  ## every benchmark, then one table (also in bench/results/latest.json)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean: down
	rm -rf .polku
