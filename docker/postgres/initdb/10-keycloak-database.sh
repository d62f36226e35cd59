#!/bin/sh
# Runs once, when the postgres container initialises an empty data volume (the image's
# /docker-entrypoint-initdb.d): the role and database Keycloak keeps its realm in, next to the
# exchange's own database (POSTGRES_DB). The password comes from KEYCLOAK_DB_PASSWORD (docker/.env).
set -eu
: "${KEYCLOAK_DB_PASSWORD:?set KEYCLOAK_DB_PASSWORD in docker/.env}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set kc_password="$KEYCLOAK_DB_PASSWORD" <<'SQL'
CREATE ROLE keycloak LOGIN PASSWORD :'kc_password';
CREATE DATABASE keycloak OWNER keycloak ENCODING 'UTF8' TEMPLATE template0;
SQL
