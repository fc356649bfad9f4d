# Herald: `make run` serves everything on 127.0.0.1:$(PORT); `make test` runs the suite.
# Both use DATABASE_URL's PostgreSQL, or without it this checkout's embedded server (var/pg,
# config/database.py), which keeps running after them: `make db-stop` stops it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: run test install lint web worker beat bench bench-peer clean db-stop

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

run: export HERALD_LOG_FORMAT ?= text
# /metrics sums the web's and the worker's figures from one directory (ops/metrics.py),
# emptied at each start.
run: export PROMETHEUS_MULTIPROC_DIR ?= $(CURDIR)/var/metrics
run: install
	@mkdir -p "$$PROMETHEUS_MULTIPROC_DIR" && rm -f "$$PROMETHEUS_MULTIPROC_DIR"/*.db
	$(PY) manage.py migrate --noinput -v 0
	$(PY) manage.py herald_demo --port $(PORT)
	@echo "Starting the worker (with beat) and the web server; Ctrl-C stops both."
	@trap 'kill 0' INT TERM EXIT; \
	$(VENV)/bin/celery -A config worker -B --pool=threads -c 4 -l warning & \
	$(PY) manage.py runserver --noreload --insecure 127.0.0.1:$(PORT)

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .

# The production shape: run each in its own terminal (or process manager) with DATABASE_URL
# and CELERY_BROKER_URL set.
# web: gunicorn's threaded workers (gunicorn.conf.py: WEB_CONCURRENCY, WEB_THREADS), so a slow
# client holds a thread, not a worker; put a buffering proxy in front (README).
web: install
	$(VENV)/bin/gunicorn config.wsgi -b 127.0.0.1:$(PORT)
# The worker: prefork with one process per CPU (celery -c N to change), the shape
# tests/faults/test_faults.py runs (--pool=prefork -c 2) under Redis, PostgreSQL and worker faults.
worker: install
	$(VENV)/bin/celery -A config worker --pool=prefork -l info
beat: install
	$(VENV)/bin/celery -A config beat -l info

db-stop: install
	$(PY) -m config.database stop

# Stops the embedded server first: its data goes with var/.
clean:
	test ! -x $(PY) || $(PY) -m config.database stop
	rm -rf var

bench: install
	command -v wrk >/dev/null || apt-get install -y wrk
	$(PY) bench/run.py

# Herald against django-post-office, 10,000 emails through one aiosmtpd server.
bench-peer: install
	$(PY) bench/peer.py
