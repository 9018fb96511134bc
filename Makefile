# Two commands do all set-up on a fresh machine: `make run` (the main job) and `make test` (the tests).
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed-wangp

.PHONY: install run test bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/wangp validate finetunes
	$(BIN)/wangp list

test: install
	$(BIN)/python -m pytest tests -q

bench: install
	$(BIN)/python bench/download_speed.py
	$(BIN)/python bench/validate_speed.py
	$(BIN)/python bench/quantize_speed.py
	$(BIN)/python bench/generate_speed.py
	$(BIN)/python bench/batch_speed.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
