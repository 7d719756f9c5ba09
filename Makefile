# The two commands of the README. Each runs the idempotent setup first.
.PHONY: setup demo test lint

setup:
	@bash scripts/setup.sh

demo: setup
	@.venv/bin/outcore demo

test: setup
	@.venv/bin/python -m pytest

lint:
	@.venv/bin/ruff check engine models wasm_sandbox server bench tests
	@.venv/bin/mypy engine models wasm_sandbox server bench
