# Two commands: `make repro` (the whole pipeline on the default) and `make test`.
# Both install requirements.lock first (every package pinned with its hashes); `make lock` refreshes it.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock
PIP_VERSION := 26.3
PIP_TOOLS := pip-tools==7.7.0
LOCK_VENV := .venv-lock

.PHONY: repro test install lock clean-venv

$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	@$(BIN)/python dgnet/lockfile.py check
	$(BIN)/python -m pip install --quiet "pip==$(PIP_VERSION)"
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

install: $(STAMP)

# pip-compile keeps the lock's pins where pyproject.toml allows them; LOCK_ARGS=--upgrade takes the newest.
lock:
	@test -x $(LOCK_VENV)/bin/pip-compile || { $(PYTHON) -m venv $(LOCK_VENV) && \
		$(LOCK_VENV)/bin/python -m pip install --quiet "pip==$(PIP_VERSION)" "$(PIP_TOOLS)"; }
	$(LOCK_VENV)/bin/pip-compile --quiet --generate-hashes --extra dev --strip-extras --allow-unsafe \
		--no-emit-index-url --no-emit-find-links $(LOCK_ARGS) --output-file $(LOCK) pyproject.toml
	$(LOCK_VENV)/bin/python dgnet/lockfile.py stamp

repro: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" dvc repro

test: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" python -m pytest -q -n 2 --dist loadfile --durations=20

clean-venv:
	rm -rf $(VENV)
