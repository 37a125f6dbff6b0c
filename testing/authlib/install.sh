#!/usr/bin/env bash
# Creates testing/authlib/.venv (python3 -m venv) and installs requirements.lock
# into it. Does nothing when the venv already holds exactly that lock: a stamp
# file in the venv records the lock's SHA-256 and the Python version.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
LOCK="$HERE/requirements.lock"
STAMP="$VENV/.installed-lock"

command -v python3 >/dev/null || { echo "install.sh: python3 not found" >&2; exit 2; }

want="$(python3 - "$LOCK" <<'PY'
import hashlib, sys
with open(sys.argv[1], "rb") as f:
    digest = hashlib.sha256(f.read()).hexdigest()
print(f"{digest} python-{sys.version_info[0]}.{sys.version_info[1]}")
PY
)"

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" == "$want" ]; then
  exit 0
fi

# A venv made by another Python (or a broken one) is made again from scratch.
venv_python="$("$VENV/bin/python" -c 'import sys; print(f"python-{sys.version_info[0]}.{sys.version_info[1]}")' 2>/dev/null || true)"
if [ "$venv_python" != "${want#* }" ]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
fi

rm -f "$STAMP"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  --require-virtualenv -r "$LOCK" >&2
"$VENV/bin/python" -m pip check >&2
printf '%s\n' "$want" >"$STAMP"
echo "install.sh: installed $(basename "$LOCK") into $VENV" >&2
