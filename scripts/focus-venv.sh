#!/usr/bin/env bash
# Create (or refresh) .venv-focus: a separate virtualenv holding the FinOps Foundation's FOCUS validator.
#
# focus-validator >= 2.2 needs Python >= 3.12 and pins numpy < 2, so it cannot live in the main .venv (Python >= 3.11,
# numpy 2). pyarrow is pinned below 23 beside it (pyarrow 23 needs numpy >= 2 wheels). tests/finops/test_focus_validator.py
# runs the validator from this venv, offline (--block-download) with its bundled FOCUS 1.2 rules.
#
# Python: $FOCUS_PYTHON, else python3.12 on PATH, else the newest 3.12.x under `pyenv root`. It must be 3.12 exactly:
# the validator needs >= 3.12 and its numpy<2 pin has no wheels for 3.13.
# Idempotent: a stamp records what was installed; when nothing changed the script exits at once.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FOCUS_VENV:-$ROOT/.venv-focus}"
FOCUS_VALIDATOR_VERSION="${FOCUS_VALIDATOR_VERSION:-2.2.1}"
PACKAGES=("focus-validator==$FOCUS_VALIDATOR_VERSION" "pyarrow<23")

ok_python() {  # true when $1 runs and is Python 3.12
    [[ -n "$1" ]] && "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null
}

find_python() {
    if [[ -n "${FOCUS_PYTHON:-}" ]]; then
        ok_python "$FOCUS_PYTHON" && { echo "$FOCUS_PYTHON"; return 0; }
        echo "focus-venv: FOCUS_PYTHON=$FOCUS_PYTHON is not a Python 3.12" >&2
        return 1
    fi
    local candidate
    for candidate in python3.12 python3; do
        if command -v "$candidate" >/dev/null 2>&1 && ok_python "$(command -v "$candidate")"; then
            command -v "$candidate"
            return 0
        fi
    done
    if command -v pyenv >/dev/null 2>&1; then
        local root
        root="$(pyenv root)"
        for candidate in $(ls -d "$root"/versions/3.12* 2>/dev/null | sort -rV); do
            ok_python "$candidate/bin/python" && { echo "$candidate/bin/python"; return 0; }
        done
    fi
    return 1
}

want="$(printf '%s\n' "${PACKAGES[@]}" | cat - "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)"
stamp="$VENV/.tokenmeter-stamp"
if [[ -x "$VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "focus-venv: $VENV is up to date"
    exit 0
fi

if [[ -x "$VENV/bin/python" ]] && ! ok_python "$VENV/bin/python"; then
    echo "focus-venv: $VENV is not a Python 3.12 venv; recreating it"
    rm -rf "$VENV"
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    if ! PYTHON="$(find_python)"; then
        echo "focus-venv: no Python 3.12 found (set FOCUS_PYTHON, or install one with pyenv)" >&2
        exit 1
    fi
    echo "focus-venv: creating $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi
pip_install() {
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@" 2>&1 | { grep -v "is ignored: it is neither" || true; }
}
pip_install --upgrade pip
pip_install "${PACKAGES[@]}"
"$VENV/bin/python" - <<'PY'
from importlib.metadata import version

import focus_validator  # noqa: F401

print("focus-venv: focus-validator", version("focus-validator"), "/ pyarrow", version("pyarrow"))
PY
echo "$want" >"$stamp"
