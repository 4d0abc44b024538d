# Goldpath: `make run` starts the portal on embedded defaults, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.goldpath-installed

.PHONY: run test lint worker bench clean tools

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/python manage.py goldpath_run

test: $(STAMP)
	GOLDPATH_HOME=$${GOLDPATH_TEST_HOME:-$(CURDIR)/var/test} GOLDPATH_DB_CONN_MAX_AGE=$${GOLDPATH_DB_CONN_MAX_AGE:-0} \
		$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

worker: $(STAMP)
	$(BIN)/celery -A portal worker -Q default,provisioning,agents,reports -l info

clean:
	rm -rf var .pytest_cache

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_policy.py

tools: $(STAMP)
	$(BIN)/python manage.py migrate --verbosity 0
	$(BIN)/python manage.py tools_install --all-approved
