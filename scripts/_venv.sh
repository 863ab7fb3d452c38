# Sourced by scripts/demo and scripts/test as `source _venv.sh EXTRAS` (EXTRAS may be ""):
# create or reuse .venv and install hivebus[EXTRAS] into it. Installs again only when
# pyproject.toml changed since the last install; an install with extras covers the plain one.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
extras="$1"
python="${PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      python="$candidate"
      break
    fi
  done
fi
if [ -z "$python" ]; then
  echo "hivebus needs Python 3.11 or newer; none found on PATH (set PYTHON=/path/to/python3)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $("$python" --version)"
  "$python" -m venv .venv
fi
stamp=".venv/.hivebus-installed${extras:+-$extras}"
fresh() { [ -f "$1" ] && [ ! pyproject.toml -nt "$1" ]; }
if [ -z "$extras" ] && fresh .venv/.hivebus-installed-dev; then
  :  # the dev install includes everything the plain one has
elif ! fresh "$stamp"; then
  echo "==> installing hivebus${extras:+[$extras]} into .venv"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras:+[$extras]}"
  touch "$stamp"
fi
