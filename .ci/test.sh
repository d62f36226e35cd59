#!/usr/bin/env bash
# The whole test command (`make test`, also what `.ci/run` runs): install, ruff, mypy,
# import-linter, then pytest against one throwaway PostgreSQL cluster shared through
# HIE_TEST_POSTGRES_URL. Every step runs; the exit status is non-zero if any step failed.
# Extra arguments go to pytest (e.g. `make test PYTEST_ARGS="tests/unit -x"`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CI="${CI:-true}"
V=.venv/bin
started=$SECONDS

bash .ci/install.sh
bash .ci/postgres.sh
bash .ci/orthanc.sh
bash .ci/nginx.sh
bash .ci/chromium.sh

failed=()
step() {
  local name="$1"; shift
  echo "== $name"
  local t0=$SECONDS
  if "$@"; then echo "-- $name ok ($((SECONDS - t0)) s)"; else echo "-- $name FAILED"; failed+=("$name"); fi
}

# Services the integration tests start themselves need their distributions fetched first.
if [ -f .ci/keycloak.sh ]; then step "Keycloak distribution" bash .ci/keycloak.sh; fi
step "ruff" "$V/ruff" check .
step "mypy" "$V/mypy"
step "import-linter" "$V/lint-imports" --no-cache

state="$(mktemp -d)/pg.json"
trap '"$V/python" .ci/pg.py stop "$state" || true; rm -rf "$(dirname "$state")"' EXIT
"$V/python" .ci/pg.py start "$state"
HIE_TEST_POSTGRES_URL="$("$V/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["url"])' "$state")"
export HIE_TEST_POSTGRES_URL

echo "== pytest"
log="$(dirname "$state")/pytest.log"
set +e
timeout --kill-after=60 80m "$V/python" -m pytest -ra -p no:cacheprovider --durations=20 "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
case $rc in
  0) ;;
  5) echo "-- pytest collected no tests: that is a failure"; failed+=("pytest (no tests)") ;;
  124) echo "-- pytest timed out after 80 minutes"; failed+=("pytest (timeout)") ;;
  *) failed+=("pytest (exit $rc)") ;;
esac

"$V/python" .ci/pg.py stop "$state"
echo "== done in $((SECONDS - started)) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED steps: ${failed[*]}"
else
  echo "all steps passed"
fi
# pytest's own closing line last, so whoever reads the tail sees the test counts.
grep -E '(passed|failed|errors?|no tests ran).* in [0-9.]+s' "$log" | tail -n 1 || true
[ ${#failed[@]} -eq 0 ]
