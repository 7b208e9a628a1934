# One-command set-up: each target creates .venv when it is missing, installs vitkit into it, then runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch/torchvision pinned to the releases this project is tested with; constraints.txt pins the rest.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test lint check-claims clean

$(BIN)/vitkit: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check $(TORCH)
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(BIN)/vitkit

demo: $(BIN)/vitkit
	$(BIN)/python scripts/demo.py

test: $(BIN)/vitkit
	$(BIN)/ruff check vitkit tests scripts
	$(BIN)/python -m pytest -q

# re-measure the quick numbers the README and config headers document; prints documented vs measured
check-claims: $(BIN)/vitkit
	$(BIN)/python scripts/check_claims.py

lint: $(BIN)/vitkit
	$(BIN)/ruff check vitkit tests scripts
	$(BIN)/ruff format --check vitkit tests scripts

clean:
	rm -rf $(VENV) runs lightning_logs
