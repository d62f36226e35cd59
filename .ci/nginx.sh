#!/usr/bin/env bash
# Make sure nginx (with the auth_request module) is present for the DICOMweb fast-path tests
# (tests/nginx_server.py starts a throwaway nginx as the current user on loopback): Debian's
# `nginx-light` is installed only when no nginx is there (root needed for that). The packaged
# service is not started (policy-rc.d in containers; the tests use their own config).
set -euo pipefail

if [ -x /usr/sbin/nginx ] && /usr/sbin/nginx -V 2>&1 | grep -q -- --with-http_auth_request_module; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "nginx with auth_request not found: install it with 'sudo apt-get install nginx-light'" >&2
  exit 1
fi
echo "== installing nginx (apt-get install nginx-light)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends nginx-light >/dev/null
