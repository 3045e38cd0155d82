#!/usr/bin/env bash
# tokenmeter benchmarks: per-call overhead against the bare openai client and the other OTel LLM
# instrumentations (one venv each, interleaved in one run), plus tokenmeter's own scale benchmarks.
#
#   bash benchmarks/run.sh --quick          # `make bench`: smoke-sized run of everything (a few minutes)
#   bash benchmarks/run.sh                  # `make bench-full`: full run (see README.md for its duration)
#   bash benchmarks/run.sh --skip-venvs     # reuse benchmarks/venvs/* as they are
#   bash benchmarks/run.sh --resolve        # re-resolve requirements/*.in, rewrite requirements/*.lock.txt
#   bash benchmarks/run.sh --no-scale       # only the contender comparison (orchestrate.py)
#   bash benchmarks/run.sh --scale-only     # only tokenmeter's scale benchmarks (scale.py)
#   bash benchmarks/run.sh --venvs-only     # only create/update benchmarks/venvs/*
#   bash benchmarks/run.sh -- --phases timing --reps 3    # anything after -- goes to `orchestrate.py run`
#
# Writes benchmarks/results/REPORT.md (contenders) and benchmarks/results/SCALE.md (scale); both are
# gitignored, RESULTS.md is the committed copy of a full run. Needs python3 (3.10+) with venv, PyPI
# access through pip, and redis-server for the Redis rows (they are skipped with a note without it).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
cd "$HERE"
PY="${PYTHON:-python3}"
VENVS="bare otel_v2 openllmetry openinference openlit openlit_oai3 tokenmeter"
RESOLVE=0
SKIP_VENVS=0
QUICK=0
RUN_CONTENDERS=1
RUN_SCALE=1
VENVS_ONLY=0
RUN_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --resolve) RESOLVE=1 ;;
    --skip-venvs) SKIP_VENVS=1 ;;
    --quick) QUICK=1; RUN_ARGS+=(--quick) ;;
    --no-scale) RUN_SCALE=0 ;;
    --scale-only) RUN_CONTENDERS=0 ;;
    --venvs-only) VENVS_ONLY=1 ;;
    --) shift; RUN_ARGS+=("$@"); break ;;
    *) echo "unknown arg $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p results/logs

lock_id() { cat "requirements/$1.lock.txt" "requirements/$1.in" 2>/dev/null | cksum | cut -d' ' -f1; }

make_venv() {
  local v="$1" log="results/logs/pip-$1.log"
  local stamp="venvs/$v/.bench-lock"
  if [ "$RESOLVE" = 0 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(lock_id "$v")" ]; then
    return 0  # up to date with its lock file
  fi
  echo "[venv] $v"
  rm -rf "venvs/$v"
  "$PY" -m venv "venvs/$v"
  local pip="venvs/$v/bin/pip"
  if [ "$RESOLVE" = 1 ] || [ ! -f "requirements/$v.lock.txt" ]; then
    if [ "$v" = tokenmeter ]; then
      "$pip" install --disable-pip-version-check -r "requirements/$v.in" "$ROOT[redis]" >"$log" 2>&1
    else
      "$pip" install --disable-pip-version-check -r "requirements/$v.in" >"$log" 2>&1
    fi
    if [ "$v" = openlit_oai3 ]; then
      # force the same openai (and its httpx2 stack) as the other venvs, ignoring openlit's openai<3 pin
      local pins
      pins=$(grep -iE '^(openai|httpx2|httpcore2|truststore)==' requirements/bare.lock.txt | tr '\n' ' ')
      # shellcheck disable=SC2086
      "$pip" install --disable-pip-version-check --no-deps $pins >>"$log" 2>&1
    fi
    "$pip" freeze --disable-pip-version-check --all 2>/dev/null \
      | grep -vE '^(pip|setuptools)==|^-e |^tokenmeter( @|==)|^# Editable' > "requirements/$v.lock.txt"
  else
    "$pip" install --disable-pip-version-check --no-deps -r "requirements/$v.lock.txt" >"$log" 2>&1
  fi
  "$pip" check --disable-pip-version-check > "results/pipcheck-$v.txt" 2>&1 || true
  lock_id "$v" > "$stamp"
}

if [ "$SKIP_VENVS" = 0 ]; then
  for v in $VENVS; do make_venv "$v"; done   # bare first: openlit_oai3 reads bare's lock
fi
# tokenmeter is (re)installed from this work tree on every run, as a regular (non-editable) install: the
# benchmark measures the current code the way users get it, byte-compiled by pip like every other
# contender's packages (an editable install would be recompiled on each import when
# PYTHONDONTWRITEBYTECODE is set, inflating its import time).
if [ -x venvs/tokenmeter/bin/pip ]; then
  venvs/tokenmeter/bin/pip install --disable-pip-version-check --no-deps --force-reinstall -q "$ROOT" \
    >"results/logs/pip-tokenmeter-self.log" 2>&1
fi
if [ "$VENVS_ONLY" = 1 ]; then exit 0; fi

# A private redis-server on a free loopback port for the Redis budget rows; stopped on exit (by pid).
REDIS_PID=""
cleanup() { if [ -n "$REDIS_PID" ]; then kill "$REDIS_PID" 2>/dev/null || true; fi; }
trap cleanup EXIT
if command -v redis-server >/dev/null 2>&1; then
  PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  redis-server --bind 127.0.0.1 --port "$PORT" --save '' --appendonly no --daemonize no \
    >"results/logs/redis.log" 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 50); do
    if "$PY" -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.2).close()" 2>/dev/null; then break; fi
    sleep 0.1
  done
  export BENCH_REDIS_URL="redis://127.0.0.1:$PORT/0"
else
  echo "redis-server not found: the Redis budget rows are skipped (apt-get install redis-server)" >&2
fi

if [ "$RUN_CONTENDERS" = 1 ]; then
  "$PY" orchestrate.py run "${RUN_ARGS[@]}"
fi
if [ "$RUN_SCALE" = 1 ]; then
  SCALE_ARGS=()
  if [ "$QUICK" = 1 ]; then SCALE_ARGS+=(--quick); fi
  venvs/tokenmeter/bin/python scale.py all "${SCALE_ARGS[@]}" --out results/SCALE.md
fi
if [ -f results/raw.jsonl ]; then
  "$PY" orchestrate.py report   # includes results/SCALE.md when present
fi
