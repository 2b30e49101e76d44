# hardener: `make demo` runs the main job on the built-in default; `make test` runs the test suite.
# Both install the Debian packages they need (scripts/setup-system.sh) and create their own venv.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all setup system venv demo test bench lint docs clean

all: test

system:
	@bash scripts/setup-system.sh

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "venv: installing hardener and its dependencies into $(VENV) (log: $(VENV)/pip.log)"
	@$(BIN)/python -m pip install -e '.[test]' > $(VENV)/pip.log 2>&1 || { tail -20 $(VENV)/pip.log; exit 1; }
	@touch $(STAMP)

venv: $(STAMP)

setup: system venv

demo: setup
	@bash scripts/demo.sh

test: setup
	@$(BIN)/python -m pytest -q

bench: setup
	@$(BIN)/python -m pytest -q -m 'slow or bench' -p no:cacheprovider -o addopts='' tests bench

docs: venv
	@$(BIN)/python -m hardener.controls.docs > docs/controls.md
	@$(BIN)/python -m hardener.profiles.docs --update docs/render.md

clean:
	rm -rf $(VENV) build dist *.egg-info out
