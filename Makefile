# Two commands for a new user: `make run` and `make test`. Everything else is a helper.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_SET_CACHE ?= $(HOME)/.cache/asr-dev-set
export DEV_SET_CACHE

.PHONY: run demo test install models test-data lint format bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and "asrserve needs Python 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

models: $(STAMP)
	$(BIN)/asrserve models prepare whisper-base

# The HTTP service on the embedded default model.
run: models
	$(BIN)/asrserve serve

# Transcribe the bundled real-speech sample from the command line and print it.
demo: models
	$(BIN)/asrserve transcribe samples/jfk.wav --format text,srt --output-dir -

test-data: $(STAMP)
	$(BIN)/python scripts/fetch_dev_set.py $(DEV_SET_CACHE)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts deploy
	$(BIN)/ruff format --check src tests bench deploy
	$(BIN)/lint-imports
	$(BIN)/mypy

test: $(STAMP) test-data models lint
	scripts/install_browser.sh
	scripts/install_services.sh
	$(BIN)/pytest

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: $(STAMP) test-data models
	$(BIN)/python -m bench.offline
	$(BIN)/python -m bench.offline --subset composed --output docs/benchmarks-long-recordings.md
	$(BIN)/python -m bench.http
	$(BIN)/python -m bench.clip_length
	$(BIN)/python -m bench.jobs --repeat 2
	$(BIN)/python -m bench.load
	$(BIN)/python -m bench.offline --subset es_prompts --language auto \
		--output docs/benchmarks-languages.md
	$(BIN)/python -m bench.offline --subset es_prompts --language auto --languages en,es \
		--systems c,c_cli --output docs/benchmarks-languages-expected.md

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build src/*.egg-info
