#!/usr/bin/env bash
# Installs the test server's Python packages into .venv beside this script, exactly as
# pinned in requirements.lock. Does nothing when .venv already holds that lock.
# Needs python3 with the venv module (Debian: python3-venv) and access to PyPI.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
LOCK="$HERE/requirements.lock"
STAMP="$VENV/.installed-lock.sha256"
PYTHON="${PYTHON:-python3}"

# Parallel test runs may all call this: one installs, the others wait for it.
if command -v flock >/dev/null; then
  exec 9>"$HERE/.install.lock"
  flock 9
fi

want="$(sha256sum "$LOCK" | cut -d' ' -f1)"
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi

# A venv left without a working pip (an interrupted creation) is made again.
if [ -d "$VENV" ] && ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
  rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi

echo "installing requirements.lock into $VENV" >&2
rm -f "$STAMP"
# The lock lists every package, so nothing needs resolving; pip check confirms that.
"$VENV/bin/python" -m pip install --disable-pip-version-check --no-input --quiet --no-deps -r "$LOCK"
"$VENV/bin/python" -m pip check --disable-pip-version-check >&2
"$VENV/bin/python" -c 'import mcp.server.auth.routes, uvicorn' 
echo "$want" >"$STAMP"
