#!/usr/bin/env bash
# Make an offline base image from Debian packages: debootstrap a minimal bookworm and import it.
#
#   sudo containers/make-base.sh [TAG]        # default localhost/skingen-base:bookworm
#
# For sites (and tests) that cannot pull from a registry. Needs root, debootstrap and podman.
# The Debian mirror is $DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail
tag="${1:-localhost/skingen-base:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
for tool in debootstrap podman; do
    command -v "$tool" >/dev/null || { echo "make-base.sh: $tool missing (apt-get install $tool)" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "make-base.sh: debootstrap needs root; run it with sudo" >&2; exit 2; }
if podman image exists "$tag"; then
    echo "base image $tag already exists"
    exit 0
fi
rootfs=$(mktemp -d /tmp/skingen-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrap bookworm (minbase) from $mirror -> $rootfs"
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | podman import - "$tag" >/dev/null
echo "base image: $tag"
