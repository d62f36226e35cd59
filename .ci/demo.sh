#!/usr/bin/env bash
# `make demo`: install into .venv, then `hie demo` (upgrade the SQLite database under ./var,
# start `hie serve`, synthesise a feed, send it over MLLP, print a summary, keep serving).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash .ci/install.sh
exec .venv/bin/hie demo "$@"
