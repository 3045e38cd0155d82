#!/usr/bin/env bash
# Install redis-server for the Redis budget-store tests, without leaving a system service running.
# The tests start their own throwaway server on a free 127.0.0.1 port (tests/governance/conftest.py).
set -euo pipefail
command -v redis-server >/dev/null 2>&1 && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "redis-server is missing: install it with your package manager (Redis tests skip, or fail when CI=true)" >&2
  exit 1
fi
# Keep Debian's maintainer scripts from starting the packaged service during the install.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq redis-server >/dev/null
service redis-server stop >/dev/null 2>&1 || true
systemctl disable redis-server >/dev/null 2>&1 || update-rc.d redis-server disable >/dev/null 2>&1 || true
command -v redis-server
