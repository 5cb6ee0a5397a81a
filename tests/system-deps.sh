#!/usr/bin/env bash
# System packages the test suite needs beyond the venv (Debian; root): headless Chromium + driver for
# the report's browser test. SLURM's packages are installed by slurm/local-cluster/cluster.sh.
set -euo pipefail
missing=""
for p in chromium chromium-driver; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ]; then echo "tests need:$missing (apt-get install as root)" >&2; exit 2; fi
  echo "[system-deps] installing:$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
