#!/usr/bin/env bash
# Build the SkinGenBench image with podman or docker (whichever exists; podman first).
#
#   containers/build.sh [--base IMAGE] [--tag TAG] [--dry-run]
#
# Package sources: PyPI by default. Behind a TLS-intercepting proxy set PIP_CERT=/path/ca.crt; with a
# site mirror set PIP_INDEX_URL; podman also mounts local PIP_FIND_LINKS / file:// PIP_EXTRA_INDEX_URL
# folders read-only into the build (docker cannot mount at build time: use a mirror URL there).
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' skingen/__init__.py)
base="" tag="localhost/skingen:${version}" dry=0
while [ $# -gt 0 ]; do
    case "$1" in
        --base) base="$2"; shift 2 ;;
        --tag) tag="$2"; shift 2 ;;
        --dry-run) dry=1; shift ;;
        *) echo "containers/build.sh: unknown option $1 (use --base IMAGE, --tag TAG, --dry-run)" >&2; exit 2 ;;
    esac
done
engine=$(command -v podman || true)
if [ -z "$engine" ] && command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    engine=$(command -v docker)
fi
if [ -z "$engine" ]; then
    echo "containers/build.sh: no podman, and no docker with a running daemon; install one (Debian: apt-get install podman)" >&2
    exit 2
fi
args=(build -f containers/Dockerfile -t "$tag")
[ -n "$base" ] && args+=(--build-arg "BASE_IMAGE=$base")
[ -n "${PIP_INDEX_URL:-}" ] && args+=(--build-arg "PIP_INDEX_URL=$PIP_INDEX_URL")
if [ "$(basename "$engine")" = podman ]; then
    # chroot isolation builds where OCI isolation cannot (cgroup v1 hosts, nested containers); it needs host networking
    args+=(--isolation chroot --network host)
    if [ -n "${PIP_CERT:-}" ]; then
        args+=(-v "$PIP_CERT:/host-ca.crt:ro" --build-arg PIP_CERT=/host-ca.crt)
    fi
    links=()
    for dir in ${PIP_FIND_LINKS:-}; do [ -d "$dir" ] && args+=(-v "$dir:$dir:ro") && links+=("$dir"); done
    [ ${#links[@]} -gt 0 ] && args+=(--build-arg "PIP_FIND_LINKS=${links[*]}")
    extra=()
    for url in ${PIP_EXTRA_INDEX_URL:-}; do
        dir=${url#file://}
        if [ "$dir" != "$url" ] && [ -d "$dir" ]; then args+=(-v "$(dirname "$dir"):$(dirname "$dir"):ro"); fi
        extra+=("$url")
    done
    [ ${#extra[@]} -gt 0 ] && args+=(--build-arg "PIP_EXTRA_INDEX_URL=${extra[*]}")
fi
args+=(.)
echo "+ $engine ${args[*]}"
[ "$dry" = 1 ] && exit 0
"$engine" "${args[@]}"
echo "image: $tag (run: $engine run --rm -v DATA:/data -v RESULTS:/results -v ASSETS:/assets $tag --help;"
echo "       Apptainer: see containers/README.md)"
