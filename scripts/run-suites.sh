#!/usr/bin/env bash
# Run test suites at the same time, each in its own virtualenv, and report them one after the other.
#
#   bash scripts/run-suites.sh "litellm=.venv-litellm/bin/python -m pytest -q -ra tests/litellm" "crewai=..."
#
# Each argument is NAME=COMMAND. Every command starts at once (the suites are separate processes with their own
# loopback servers on free ports, so they do not share state); each one's output is kept in a file and printed
# whole, under its name and duration, as soon as it finishes, so the logs never interleave. The exit status is
# non-zero when any suite failed, and the last line names the ones that did.
# SUITES_SERIAL=1 runs them one after the other instead (e.g. on a one-core machine).
set -uo pipefail

if [[ $# -eq 0 ]]; then
    echo "usage: $0 NAME=COMMAND..." >&2
    exit 2
fi
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
# Interrupted: stop the suites this script started (by their process ids), then exit.
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; exit 130' INT TERM

declare -A pids=() started=()
names=()
for spec in "$@"; do
    name="${spec%%=*}"
    cmd="${spec#*=}"
    names+=("$name")
    started[$name]=$SECONDS
    if [[ "${SUITES_SERIAL:-0}" == "1" ]]; then
        bash -c "$cmd" >"$logs/$name.log" 2>&1
        echo $? >"$logs/$name.rc"
        echo "===== $name: $(( SECONDS - ${started[$name]} ))s, exit $(cat "$logs/$name.rc") ====="
        cat "$logs/$name.log"
    else
        ( bash -c "$cmd" >"$logs/$name.log" 2>&1; rc=$?; echo $SECONDS >"$logs/$name.end"; echo $rc >"$logs/$name.rc" ) &
        pids[$name]=$!
    fi
done

failed=()
if [[ "${SUITES_SERIAL:-0}" != "1" ]]; then
    pending=("${names[@]}")
    while [[ ${#pending[@]} -gt 0 ]]; do
        still=()
        for name in "${pending[@]}"; do
            if [[ -f "$logs/$name.rc" ]]; then
                wait "${pids[$name]}" 2>/dev/null
                echo "===== $name: $(( $(cat "$logs/$name.end") - ${started[$name]} ))s, exit $(cat "$logs/$name.rc") ====="
                cat "$logs/$name.log"
            else
                still+=("$name")
            fi
        done
        pending=("${still[@]+"${still[@]}"}")
        [[ ${#pending[@]} -gt 0 ]] && sleep 1
    done
fi
for name in "${names[@]}"; do
    [[ "$(cat "$logs/$name.rc")" == "0" ]] || failed+=("$name")
done
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "run-suites: FAILED: ${failed[*]}"
    exit 1
fi
echo "run-suites: all passed: ${names[*]}"
