#!/usr/bin/env bash
# Installs oidc-provider exactly as package-lock.json pins it, when node_modules is missing
# or older than the lock file; otherwise does nothing. Needs node and npm.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if [ ! -d node_modules/oidc-provider ] || [ package-lock.json -nt node_modules ]; then
  npm ci --no-audit --no-fund --loglevel=error
  touch node_modules
fi
