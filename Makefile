# Polku's developer commands. `make test` on a fresh clone installs and starts everything it needs.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install infra browser kustomize prometheus test up down logs lint bench run clean

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

bench: infra
	$(BIN)/python -m bench

clean: down
	rm -rf .polku
