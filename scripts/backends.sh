#!/usr/bin/env bash
# Install the real OpenTelemetry backends that the e2e tests (tests/e2e/) run against.
#
#   scripts/backends.sh install [prometheus|victoriametrics|phoenix|rotel|chromium|all]   (default: all)
#   scripts/backends.sh status
#
# Everything lands in a project-local cache, $TOKENMETER_BACKENDS_DIR (default <repo>/.cache/backends):
#   bin/prometheus, bin/promtool     Debian 12 package `prometheus` (2.42), fetched with `apt-get download`
#                                    and unpacked with `dpkg-deb -x`: nothing is installed system-wide,
#                                    so no systemd service is created, started or enabled.
#   bin/victoria-metrics, bin/vmagent Debian 13 (trixie) package `victoria-metrics` (>= 1.92, has OTLP
#                                    ingestion; Debian 12's 1.79 has none). Fetched with `apt-get download`
#                                    through a private apt state (system apt config untouched), unpacked
#                                    with `dpkg-deb -x`; it is a static Go binary.
#   phoenix-venv/                    PyPI `arize-phoenix==$PHOENIX_VERSION` in its own virtualenv (~855 MB).
#   rotel-venv/                      PyPI `rotel==$ROTEL_VERSION` (a Rust OpenTelemetry collector; the wheel ships the
#                                    `rotel-agent` binary) in its own small virtualenv; the fleet e2e test's collector.
#   chromium                         Debian `chromium` + fonts, system-wide apt install: the HTML report's headless
#                                    browser test and the screenshots.
#
# Idempotent: each part writes a stamp file only after it succeeded; a second run is a no-op (< 1 s).
# Must run as root (or with sudo) only for the apt-get steps that touch the system: `apt-get update`
# when the machine has no package lists yet, and the optional chromium install.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${TOKENMETER_BACKENDS_DIR:-$ROOT/.cache/backends}
PHOENIX_VERSION=${PHOENIX_VERSION:-20.26.1}   # verified: tests/e2e/test_backends_selftest.py
ROTEL_VERSION=${ROTEL_VERSION:-0.0.1a15}      # verified: tests/e2e/test_fleet_e2e.py
VM_MIN_VERSION=1.92
PYTHON=${PYTHON:-python3}
PROM_UI_DEBS=(fonts-glyphicons-halflings libjs-bootstrap4 libjs-d3 libjs-eonasdan-bootstrap-datetimepicker libjs-jquery
              libjs-jquery-hotkeys libjs-moment libjs-moment-timezone libjs-mustache libjs-popper.js libjs-rickshaw)

log() { printf '[backends] %s\n' "$*" >&2; }
die() { printf '[backends] ERROR: %s\n' "$*" >&2; exit 1; }

APT_ROOT_OPTS=(-o APT::Sandbox::User=root)   # root downloads into our own dirs, not as _apt

# Debian mirror this machine already uses (so only the package registry is contacted).
debian_mirror() {
  local m=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    m=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
    m=$(awk '$1=="deb" && $2 !~ /security/ {print ($2 ~ /^\[/ ? $3 : $2); exit}' /etc/apt/sources.list)
  fi
  echo "${m:-http://deb.debian.org/debian}"
}

need_cmd() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found; this script needs a Debian system with $1"; }

# fetch_deb_system PKG...: apt-get download PKGs from the machine's own (Debian 12) sources into $CACHE/debs.
fetch_deb_system() {
  local p missing=()
  mkdir -p "$CACHE/debs"
  for p in "$@"; do ls "$CACHE/debs/${p}_"*.deb >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get download ${missing[*]} (Debian 12 sources)"
  if ! (cd "$CACHE/debs" && apt-get "${APT_ROOT_OPTS[@]}" download -q "${missing[@]}" >/dev/null 2>&1); then
    log "package lists missing or stale: apt-get update"
    apt-get update -qq || die "apt-get update failed (are you root? is the Debian mirror reachable?)"
    (cd "$CACHE/debs" && apt-get "${APT_ROOT_OPTS[@]}" download -q "${missing[@]}" >/dev/null) \
      || die "apt-get download ${missing[*]} failed"
  fi
}

# fetch_deb_trixie PKG: apt-get download PKG from Debian 13 "trixie" using a private apt state
# under $CACHE/apt-trixie (own sources.list, lists and cache; the system's apt setup is not touched).
fetch_deb_trixie() {
  local pkg=$1 st=$CACHE/apt-trixie
  mkdir -p "$st/lists/partial" "$st/cache/archives/partial" "$CACHE/debs"
  if ls "$CACHE/debs/${pkg}_"*.deb >/dev/null 2>&1; then return 0; fi
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [ -f "$keyring" ] || die "$keyring missing (package debian-archive-keyring)"
  echo "deb [signed-by=$keyring] $(debian_mirror) trixie main" >"$st/sources.list"
  local A=("${APT_ROOT_OPTS[@]}" -o "Dir::Etc::SourceList=$st/sources.list" -o Dir::Etc::SourceParts=/dev/null
           -o "Dir::State::Lists=$st/lists" -o "Dir::Cache=$st/cache" -o "Dir::State::status=/dev/null")
  if ! ls "$st/lists/"*Packages* >/dev/null 2>&1; then
    log "apt-get update of Debian 13 lists (private state in $st)"
    apt-get "${A[@]}" update -qq || die "apt-get update (trixie, private state) failed"
  fi
  log "apt-get download $pkg (Debian 13 trixie)"
  (cd "$CACHE/debs" && apt-get "${A[@]}" download -q "$pkg" >/dev/null) || die "apt-get download $pkg (trixie) failed"
}

# version_ge A B: A >= B (dotted numeric)
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" = "$2" ]; }

install_prometheus() {
  local stamp=$CACHE/.stamp-prometheus
  if [ -f "$stamp" ] && [ -x "$CACHE/bin/prometheus" ] && [ -x "$CACHE/bin/promtool" ]; then
    log "prometheus: already installed ($(cat "$stamp"))"; return 0
  fi
  need_cmd apt-get; need_cmd dpkg-deb
  # prometheus + the Debian JS/font packages its web UI symlinks to (relative links into usr/share),
  # all unpacked into one private root so the UI works with --web.local-assets=<root>/usr/share/prometheus/web/
  fetch_deb_system prometheus "${PROM_UI_DEBS[@]}"
  rm -rf "$CACHE/prometheus"; mkdir -p "$CACHE/prometheus" "$CACHE/bin"
  local p deb
  for p in prometheus "${PROM_UI_DEBS[@]}"; do
    deb=$(ls "$CACHE/debs/${p}_"*.deb | sort -V | tail -1)
    dpkg-deb -x "$deb" "$CACHE/prometheus"   # files only: no maintainer scripts, no service
  done
  # trim what neither the server nor its UI uses (moment-timezone's raw tz data alone is 212 MB)
  rm -rf "$CACHE/prometheus/usr/share/javascript/moment-timezone/data" "$CACHE/prometheus/usr/share/doc" \
         "$CACHE/prometheus/usr/share/man"
  deb=$(ls "$CACHE/debs/prometheus_"*.deb | sort -V | tail -1)
  ln -sfn ../prometheus/usr/bin/prometheus "$CACHE/bin/prometheus"
  ln -sfn ../prometheus/usr/bin/promtool "$CACHE/bin/promtool"
  local v; v=$("$CACHE/bin/prometheus" --version 2>&1 | head -1) || die "unpacked prometheus does not run: $v"
  "$CACHE/bin/promtool" --version >/dev/null 2>&1 || die "unpacked promtool does not run"
  echo "$(basename "$deb"): $v" >"$stamp"
  log "prometheus: installed $(cat "$stamp") -> $CACHE/bin/prometheus, $CACHE/bin/promtool"
}

install_victoriametrics() {
  local stamp=$CACHE/.stamp-victoriametrics
  if [ -f "$stamp" ] && [ -x "$CACHE/bin/victoria-metrics" ]; then
    log "victoriametrics: already installed ($(cat "$stamp"))"; return 0
  fi
  need_cmd apt-get; need_cmd dpkg-deb
  fetch_deb_trixie victoria-metrics
  local deb; deb=$(ls "$CACHE/debs/victoria-metrics_"*.deb | sort -V | tail -1)
  rm -rf "$CACHE/victoria-metrics"; mkdir -p "$CACHE/victoria-metrics" "$CACHE/bin"
  dpkg-deb -x "$deb" "$CACHE/victoria-metrics"
  # keep the single-node server and vmagent (OTLP -> remote write, e.g. into Prometheus); drop the rest
  find "$CACHE/victoria-metrics/usr/bin" -type f ! -name victoria-metrics ! -name vmagent -delete
  rm -rf "$CACHE/victoria-metrics/usr/share/doc" "$CACHE/victoria-metrics/usr/share/man"
  ln -sfn ../victoria-metrics/usr/bin/victoria-metrics "$CACHE/bin/victoria-metrics"
  ln -sfn ../victoria-metrics/usr/bin/vmagent "$CACHE/bin/vmagent"
  # Debian builds print an empty -version; take the package version, then check the binary runs.
  local v num
  v=$(dpkg-deb -f "$deb" Version)
  num=$(echo "$v" | grep -oE '^[0-9]+\.[0-9]+(\.[0-9]+)?')
  [ -n "$num" ] && version_ge "$num" "$VM_MIN_VERSION" \
    || die "victoria-metrics $v is older than $VM_MIN_VERSION (no OTLP ingestion)"
  # Dynamically linked against libc6 and libzstd1 (both on every Debian 12; libzstd1 is pulled in by dpkg).
  "$CACHE/bin/victoria-metrics" -help >/dev/null 2>&1 \
    || die "unpacked victoria-metrics does not run: $(ldd "$CACHE/bin/victoria-metrics" 2>&1 | grep 'not found')"
  echo "$(basename "$deb"): $v" >"$stamp"
  log "victoriametrics: installed $(cat "$stamp") -> $CACHE/bin/victoria-metrics"
}

install_phoenix() {
  local venv=$CACHE/phoenix-venv stamp=$CACHE/.stamp-phoenix
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "arize-phoenix==$PHOENIX_VERSION" ] && [ -x "$venv/bin/python" ]; then
    log "phoenix: already installed ($(cat "$stamp"))"; return 0
  fi
  rm -rf "$venv" "$stamp"; mkdir -p "$CACHE"
  log "phoenix: creating virtualenv $venv with $($PYTHON --version 2>&1)"
  make_venv "$venv"
  log "phoenix: pip install arize-phoenix==$PHOENIX_VERSION (~855 MB, about a minute)"
  local piplog=$CACHE/phoenix-pip.log
  if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-input --progress-bar off \
      "arize-phoenix==$PHOENIX_VERSION" >"$piplog" 2>&1; then
    grep -v '^WARNING: Location' "$piplog" | tail -20 >&2
    die "pip install arize-phoenix==$PHOENIX_VERSION failed (is PyPI reachable?); full log: $piplog"
  fi
  "$venv/bin/python" -c 'import phoenix.server.main, grpc.aio' \
    || die "arize-phoenix installed but phoenix.server.main does not import"
  echo "arize-phoenix==$PHOENIX_VERSION" >"$stamp"
  log "phoenix: installed arize-phoenix==$PHOENIX_VERSION -> $venv ($(du -sh "$venv" | cut -f1))"
}

# make_venv DIR: python3 -m venv DIR, installing python3-venv first where Debian left it out.
make_venv() {
  local venv=$1
  need_cmd "$PYTHON"
  if ! "$PYTHON" -m venv "$venv" 2>/dev/null; then
    rm -rf "$venv"
    local pyver; pyver=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    log "python venv module unusable: apt-get install python3-venv python${pyver}-venv"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv "python${pyver}-venv" >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv "python${pyver}-venv" >/dev/null; } \
      || die "cannot install python3-venv"
    "$PYTHON" -m venv "$venv" || die "python3 -m venv $venv failed"
  fi
}

install_rotel() {
  local venv=$CACHE/rotel-venv stamp=$CACHE/.stamp-rotel
  if [ -f "$stamp" ] && [ "$(head -1 "$stamp")" = "rotel==$ROTEL_VERSION" ] && [ -x "$CACHE/bin/rotel-agent" ]; then
    log "rotel: already installed ($(head -1 "$stamp"))"; return 0
  fi
  rm -rf "$venv" "$stamp"; mkdir -p "$CACHE/bin"
  make_venv "$venv"
  log "rotel: pip install rotel==$ROTEL_VERSION"
  local piplog=$CACHE/rotel-pip.log
  if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-input --progress-bar off \
      "rotel==$ROTEL_VERSION" >"$piplog" 2>&1; then
    grep -v '^WARNING: Location' "$piplog" | tail -20 >&2
    die "pip install rotel==$ROTEL_VERSION failed (is PyPI reachable?); full log: $piplog"
  fi
  local agent
  agent=$("$venv/bin/python" -c 'import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), "rotel-agent"))') \
    || die "rotel installed but does not import"
  [ -x "$agent" ] || die "rotel wheel has no rotel-agent binary at $agent"
  ln -sfn "$agent" "$CACHE/bin/rotel-agent"
  local v; v=$("$CACHE/bin/rotel-agent" --version 2>&1 | head -1) || die "rotel-agent does not run: $v"
  printf 'rotel==%s\n%s\n' "$ROTEL_VERSION" "$v" >"$stamp"
  log "rotel: installed rotel==$ROTEL_VERSION ($v) -> $CACHE/bin/rotel-agent"
}

install_chromium() {
  if command -v chromium >/dev/null 2>&1; then
    log "chromium: already installed ($(chromium --version 2>/dev/null | head -1))"; return 0
  fi
  need_cmd apt-get
  log "chromium: apt-get install chromium fonts-dejavu-core"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null; } \
    || die "apt-get install chromium failed"
  log "chromium: installed ($(chromium --version 2>/dev/null | head -1))"
}

timed() {  # timed NAME FUNC: run FUNC, log wall time
  local t0 t1; t0=$(date +%s%N); "$2"; t1=$(date +%s%N)
  log "$1: done in $(( (t1 - t0) / 1000000 )) ms"
}

status() {
  local s
  for s in prometheus victoriametrics phoenix rotel; do
    if [ -f "$CACHE/.stamp-$s" ]; then echo "$s: $(head -1 "$CACHE/.stamp-$s")"; else echo "$s: not installed"; fi
  done
  if command -v chromium >/dev/null 2>&1; then echo "chromium: $(chromium --version 2>/dev/null | head -1)"; else echo "chromium: not installed"; fi
}

usage() { echo "usage: $0 install [prometheus|victoriametrics|phoenix|rotel|chromium|all] | status" >&2; exit 2; }

main() {
  local cmd=${1:-} what=${2:-all}
  case "$cmd" in
    install) ;;
    status) status; return 0 ;;
    *) usage ;;
  esac
  mkdir -p "$CACHE"
  # One installer at a time per cache dir (e.g. parallel make targets).
  exec 9>"$CACHE/.lock"
  if command -v flock >/dev/null 2>&1; then flock 9; fi
  log "cache: $CACHE"
  case "$what" in
    prometheus)      timed prometheus install_prometheus ;;
    victoriametrics) timed victoriametrics install_victoriametrics ;;
    phoenix)         timed phoenix install_phoenix ;;
    rotel)           timed rotel install_rotel ;;
    chromium)        timed chromium install_chromium ;;
    all)             timed prometheus install_prometheus
                     timed victoriametrics install_victoriametrics
                     timed phoenix install_phoenix
                     timed rotel install_rotel
                     timed chromium install_chromium ;;
    *) usage ;;
  esac
}

main "$@"
