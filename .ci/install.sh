#!/usr/bin/env bash
# Create .venv (Python 3.11 or 3.12) and install the project with its dev extras.
# Re-installs only when pyproject.toml or the set of top-level packages changed since the
# last successful install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

pick_python() {
  for candidate in "${PYTHON:-}" python3.11 python3.12 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 12) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "need Python 3.11 or 3.12 (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys' 2>/dev/null; then
  python="$(pick_python)"
  echo "== creating .venv with $("$python" --version)"
  "$python" -m venv .venv
fi

# Editable installs map top-level packages when installed: a new package folder re-installs too.
stamp=".venv/.installed-$( (cat pyproject.toml; ls -d -- */__init__.py 2>/dev/null) | sha256sum | cut -c1-16)"
if [ ! -e "$stamp" ] || ! .venv/bin/python -c 'import hie_server, adapters.synth' 2>/dev/null; then
  echo "== pip install -e '.[dev]'"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi
