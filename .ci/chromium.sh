#!/usr/bin/env bash
# Make sure a headless browser and Chinese fonts are present for the workbench tests
# (tests/e2e/test_workbench.py drives Debian's `chromium` with Playwright; `playwright install`
# is never run): `chromium` and `fonts-noto-cjk` are installed only when missing (root needed).
set -euo pipefail

if [ -x /usr/bin/chromium ] && fc-list 2>/dev/null | grep -qi "Noto Sans CJK"; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "chromium or CJK fonts not found: install them with 'sudo apt-get install chromium fonts-noto-cjk'" >&2
  exit 1
fi
echo "== installing Chromium and CJK fonts (apt-get install chromium fonts-noto-cjk)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-noto-cjk >/dev/null
