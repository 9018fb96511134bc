# Two commands do all set-up on a fresh machine: `make run` (the main job) and `make test` (the tests).
# `make install` installs wangp with the `generate` extra (torch, diffusers, ...): `pip install wangp` alone is the
# light install (validate, list, show, download; no torch), see pyproject.toml.
# torch is pinned in constraints.txt (2.13.0, the CPU build on this project's machines). Where pip would fetch a
# CUDA build instead, pass the CPU index: make run TORCH_INDEX=https://download.pytorch.org/whl/cpu
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
TORCH_INDEX ?=
PIP = $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt \
	$(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
RUN_STAMP = $(VENV)/.installed-wangp
TEST_STAMP = $(VENV)/.installed-wangp-test

.PHONY: install run test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e '.[generate]'
	touch $(RUN_STAMP)

$(TEST_STAMP): $(RUN_STAMP)
	$(PIP) -e '.[test]'
	touch $(TEST_STAMP)

install: $(RUN_STAMP)

# The main job end to end: validate and list the shipped definitions, then generate a short video with the
# embedded tiny random model (doctor's offline self-test, kept in outputs/): its path and stage timings are printed.
run: install
	$(BIN)/wangp validate finetunes
	$(BIN)/wangp list
	$(BIN)/wangp doctor --output outputs

test: $(TEST_STAMP)
	$(BIN)/python -m pytest tests -q

bench: $(TEST_STAMP)
	$(BIN)/python bench/download_speed.py
	$(BIN)/python bench/validate_speed.py
	$(BIN)/python bench/quantize_speed.py
	$(BIN)/python bench/generate_speed.py
	$(BIN)/python bench/generate_family_speed.py
	$(BIN)/python bench/batch_speed.py
	$(BIN)/python bench/cache_speed.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
