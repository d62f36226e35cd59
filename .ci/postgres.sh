#!/usr/bin/env bash
# Make sure PostgreSQL server binaries (initdb, pg_ctl) are present: Debian's `postgresql`
# package is installed only when they are missing (root needed for that).
set -euo pipefail

if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "PostgreSQL server binaries not found: install them with 'sudo apt-get install postgresql'" >&2
  exit 1
fi
echo "== installing PostgreSQL (apt-get install postgresql)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql >/dev/null
