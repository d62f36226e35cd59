#!/usr/bin/env bash
# Make sure Orthanc, its DICOMweb plugin and its Web Viewer plugin are present for the imaging
# tests (tests/orthanc_server.py starts a throwaway Orthanc per test module): Debian's `orthanc`,
# `orthanc-dicomweb` and `orthanc-webviewer` packages are installed only when missing (root
# needed for that). The
# packaged service is not started (policy-rc.d in containers; the tests use their own config).
set -euo pipefail

if [ -x /usr/sbin/Orthanc ] && [ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] \
  && [ -e /usr/share/orthanc/plugins/libOrthancWebViewer.so ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "Orthanc not found: install it with 'sudo apt-get install orthanc orthanc-dicomweb orthanc-webviewer'" >&2
  exit 1
fi
echo "== installing Orthanc (apt-get install orthanc orthanc-dicomweb orthanc-webviewer)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends orthanc orthanc-dicomweb orthanc-webviewer >/dev/null
