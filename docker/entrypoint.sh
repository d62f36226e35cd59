#!/bin/sh
# Entrypoint of the exchange image (docker/Dockerfile): `hie ARGS...`.
# For `serve`, the database is first brought to the current schema with `hie db upgrade`
# (idempotent; alembic migrations plus the shipped terminology when missing), so a new image
# started on an older database upgrades it before serving. A failed upgrade stops the
# container with the upgrade's message; `hie serve` itself refuses an out-of-date schema.
set -eu
if [ "${1:-}" = "serve" ]; then
  hie db upgrade
fi
exec hie "$@"
