#!/usr/bin/env bash
# Installs this harness's npm dependencies (exactly as package-lock.json pins them) when
# node_modules is missing or older than the lock file; otherwise does nothing.
# Needs node and npm.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

if [ ! -d node_modules/@modelcontextprotocol/sdk ] || [ package-lock.json -nt node_modules ]; then
  npm ci --no-audit --no-fund --loglevel=error
  # npm ci recreates node_modules, but make "newer than the lock" hold whatever npm does.
  touch node_modules
fi
