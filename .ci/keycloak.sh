#!/usr/bin/env bash
# Fetch the Keycloak server distribution (Maven artifact org.keycloak:keycloak-quarkus-dist, zip)
# into the local Maven repository, where tests/kcserver.py finds, unzips and starts it for the
# integration tests (tests/integration/test_keycloak.py). Idempotent; Java 21+ is picked by
# tests/kcserver.py (JAVA_HOME, else the newest JDK under /usr/lib/jvm).
set -euo pipefail
version="${HIE_KEYCLOAK_VERSION:-26.5.6}"
zip="${HOME}/.m2/repository/org/keycloak/keycloak-quarkus-dist/${version}/keycloak-quarkus-dist-${version}.zip"
if [ -s "$zip" ]; then
  echo "== Keycloak ${version} distribution present"
  exit 0
fi
echo "== fetching Keycloak ${version} server distribution with Maven"
mvn -q -B dependency:get -Dartifact="org.keycloak:keycloak-quarkus-dist:${version}:zip" -Dtransitive=false
test -s "$zip"
