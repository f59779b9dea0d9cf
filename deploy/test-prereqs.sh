#!/usr/bin/env bash
# What the test suite needs beyond Python packages, installed when missing:
# redis-server (the private test Redis), Debian's PostgreSQL (the ledger's private test
# server: initdb into a temporary directory) and Debian's Chromium (the browser test).
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# Debian keeps initdb out of PATH (/usr/lib/postgresql/<version>/bin).
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${need[*]} from Debian's packages"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing: ${need[*]} (install them with your package manager)" >&2
    exit 1
  fi
fi
