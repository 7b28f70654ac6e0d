# The two commands a newcomer needs: `make demo` and `make test`. Everything else is here so
# that those two work on a fresh Debian or Raspberry Pi OS machine.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
EXTRAS := node,cloud,web,kiosk,demo,dev
# Debian packages the tests use for real: the broker and the store of record; Mesa's EGL and
# GLES for the kiosk rendered offscreen; CJK fonts for Japanese and Chinese screens; espeak-ng
# for the kiosk's read-aloud button; Node.js and npm (when npm is missing) for the Node-RED the
# collector benchmark compares against, which its test runs at a small size; systemd for
# systemd-analyze, which checks the shipped units; PostgreSQL for the web app's database,
# Chromium for its browser tests (driven by Playwright, never downloaded) and poppler's
# pdftoppm to look at the PDF Chromium prints of a monthly report.
DEBIAN_PACKAGES := mosquitto influxdb systemd libegl1 libgles2 libgl1-mesa-dri fonts-noto-cjk \
	espeak-ng postgresql chromium poppler-utils

.PHONY: demo test lint typecheck pytest bench system-deps venv lock clean web-catalogs vendor

demo: venv
	$(VENV)/bin/machikado demo

test: system-deps venv lint typecheck pytest

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

pytest: venv
	$(PY) -m pytest

bench: system-deps venv
	$(PY) -m bench

# Installs the Debian packages that are missing, when run as root; otherwise says what to install.
system-deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	command -v npm >/dev/null 2>&1 || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	  else \
	    echo "missing Debian packages:$$missing (run 'sudo apt-get install$$missing' or 'sudo make test')"; exit 1; \
	  fi; \
	fi

venv: $(VENV)/.installed

# Reinstalled when pyproject.toml or the lock changes. The lock pins what CI installed; `make lock`
# refreshes it from the current environment.
$(VENV)/.installed: pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e ".[$(EXTRAS)]"
	@touch $@

lock: venv
	$(PY) -m pip freeze --exclude-editable --exclude pip > requirements.lock

# The web app's message catalogs, after a message was added or changed in code or templates.
web-catalogs: venv
	$(PY) -m cloud.web.catalogs

# The browser code served by the web app (htmx) and used by its tests (axe-core), from npm.
vendor:
	cd $$(mktemp -d) && npm pack --silent htmx.org@2.0.11 axe-core@4.14.1 \
	  && tar xzf htmx.org-2.0.11.tgz && cp package/dist/htmx.min.js $(CURDIR)/cloud/web/static/vendor/ \
	  && rm -rf package && tar xzf axe-core-4.14.1.tgz && cp package/axe.min.js $(CURDIR)/tests/web/vendor/

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
