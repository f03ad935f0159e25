#!/usr/bin/env bash
# Makes the Debian bookworm root filesystems the docker tests build and run on, offline: no image
# registry is reachable here, so `FROM python:3.11-slim` or `redis:7` cannot be pulled.
#   build_base_image.sh base      python3 + venv: the BASE_IMAGE of deploy/docker/Dockerfile
#   build_base_image.sh services  redis, PostgreSQL, nginx, Prometheus, curl: stands in for the
#                                 official images of the Compose stack (tests/deploy)
# debootstrap takes the packages from the apt mirror (about a minute each); the root filesystem
# is cached as a tarball, whose path is printed, and `docker import`ed by the tests. Real users
# build on python:3.11-slim and run the official images.
set -euo pipefail

kind=${1:-base}
case $kind in
    base) packages=python3,python3-venv ;;
    services) packages=redis-server,postgresql,nginx-light,prometheus,curl,ca-certificates ;;
    *) echo "build_base_image.sh: base or services, not $kind" >&2; exit 2 ;;
esac
cache=${ASRSERVE_TOOLS_CACHE:-$HOME/.cache/asrserve-tools}
tarball=$cache/$kind-bookworm.tar
if [[ -s $tarball ]]; then
    echo "$tarball"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "build_base_image.sh: debootstrap is missing (scripts/install_services.sh installs it)" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || { echo "build_base_image.sh: debootstrap needs root" >&2; exit 1; }
mirror=${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\(\S*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)}
mirror=${mirror:-http://deb.debian.org/debian}

mkdir -p "$cache"
work=$(mktemp -d "$cache/rootfs.XXXXXX")
log=$work.log
trap 'rm -rf "$work" "$log"' EXIT
if ! debootstrap --variant=minbase --include="$packages" bookworm "$work/rootfs" "$mirror" >"$log" 2>&1; then
    tail -30 "$log" >&2
    echo "build_base_image.sh: debootstrap of $kind failed" >&2
    exit 1
fi
# apt lists and caches are no use in an image; a cluster made by the package is not ours.
rm -rf "$work"/rootfs/var/lib/apt/lists/* "$work"/rootfs/var/cache/apt/*.bin \
    "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/postgresql/*/main
tar -C "$work/rootfs" -cf "$tarball.partial" .
mv "$tarball.partial" "$tarball"
echo "$tarball"
