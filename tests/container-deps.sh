#!/usr/bin/env bash
# System packages of the container build-and-run test (Debian; root): podman (+ runc, which runs
# where crun cannot), buildah and debootstrap for the offline base image.
set -euo pipefail
missing=""
for p in podman buildah runc debootstrap; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ]; then echo "container tests need:$missing (apt-get install as root)" >&2; exit 2; fi
  echo "[container-deps] installing:$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
