# Two commands on a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# The suite runs against the real services on loopback; override to point elsewhere.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

# Serve the app on http://127.0.0.1:8000 with SQLite under var/ (DEBUG on unless set).
# Set DATABASE_URL / REDIS_URL to use PostgreSQL and Redis instead.
run: $(VENV)/.runtime
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py migrate --noinput
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py load_protocols
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py seed_demo
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py runserver 127.0.0.1:8000

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DEBUG=1 $(BIN)/mypy .

# Lint, type-check, then the whole suite on PostgreSQL and Redis. HTTPS=off: the test client and
# the live server speak plain HTTP, so the production redirect to https would answer every request
# with a 301; tests/config/test_security.py proves the HTTPS settings in production form.
test: lint
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) SECRET_KEY=test-only-not-secret \
		HTTPS=off $(BIN)/python -m pytest --durations=30

# bench/reminders.py needs Redis (database 11 unless REDIS_URL says otherwise) and aiosmtpd.
bench: $(VENV)/.dev
	DEBUG=1 $(BIN)/python bench/plan.py
	DEBUG=1 $(BIN)/python bench/enroll.py
	DEBUG=0 $(BIN)/python bench/pages.py
	DEBUG=0 $(BIN)/python bench/api.py
	DEBUG=0 $(BIN)/python bench/reminders.py
	DEBUG=0 $(BIN)/python bench/calendars.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
