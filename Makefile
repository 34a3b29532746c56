# Two commands on a fresh machine: `make run` and `make test`.
# Both install exactly what uv.lock says: `make run` the runtime alone, `make test` adds the
# dev group (pytest, Playwright, locust...). `make upgrade` moves the lock to the newest allowed releases.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TOOLS := .tools
UV := $(TOOLS)/bin/uv
PORT ?= 8000
# uv keeps the virtualenv at .venv with this interpreter; --locked fails when pyproject.toml and
# uv.lock disagree instead of quietly re-resolving.
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never
SYNC := $(UV) sync --locked

.PHONY: install install-dev run test lint upgrade clean

$(UV): requirements-uv.txt
	$(PYTHON) -m pip install --quiet --root-user-action=ignore --no-deps --require-hashes --upgrade --target $(TOOLS) -r requirements-uv.txt
	@touch $(UV)

# The runtime alone; --inexact keeps the dev group if `make test` installed it before.
install: $(VENV)/.installed-run
$(VENV)/.installed-run: $(UV) uv.lock pyproject.toml
	$(SYNC) --no-dev --inexact --quiet
	@touch $@

# Runtime and dev group, exactly the lock (anything else in the virtualenv is removed).
install-dev: $(VENV)/.installed-dev
$(VENV)/.installed-dev: $(UV) uv.lock pyproject.toml
	$(SYNC) --quiet
	@touch $@ $(VENV)/.installed-run

# Development settings for this checkout (git-ignored); the environment still wins over it.
.env:
	@printf '%s\n' "# Development settings written by the first \`make run\` (see .env.example)." \
	  "DEBUG=1" "SECRET_KEY=$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')" > $@
	@echo "Wrote .env (DEBUG=1 and a generated SECRET_KEY)."

# Web, Celery worker and beat on one machine with no servers (SQLite + on-disk broker),
# unless DATABASE_URL / CELERY_BROKER_URL say otherwise.
run: install .env
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	PORT=$(PORT) bin/run

test: install-dev
	$(UV) sync --locked --check --quiet
	$(PY) manage.py makemigrations --check --dry-run --settings=arenasite.settings_test
	$(PY) manage.py spectacular --validate --fail-on-warn --settings=arenasite.settings_test --file /dev/null
	$(PY) -m pytest $(PYTEST_ARGS)

# The lock at the newest releases pyproject.toml allows; then `make test` installs and checks them.
upgrade: $(UV)
	$(UV) lock --upgrade
	$(SYNC) --quiet
	@touch $(VENV)/.installed-dev $(VENV)/.installed-run

# ruff, then mypy as pyproject.toml's [tool.mypy] says (strict for providers/).
lint: install-dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

clean:
	rm -rf $(VENV) $(TOOLS) var
