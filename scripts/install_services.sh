#!/usr/bin/env bash
# Installs the Debian servers and tools the tests start themselves on loopback: redis-server (the
# Celery broker) and postgresql (the shared job store) for the scale-out tests; docker.io,
# docker-compose and debootstrap for the image and Compose tests (their daemon runs without
# bridge networks); prometheus for promtool. Idempotent and quiet: does nothing when all are
# there. No system service is started (policy-rc.d); the tests never use a system-wide instance.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install_services.sh: ${missing[*]} missing; run this script as root (or install sudo)." >&2
        exit 1
    fi
    SUDO=(sudo)
fi

echo "install_services.sh: installing ${missing[*]} (needed by the scale-out tests)" >&2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# policy-rc.d 101 keeps the packages from starting system services of their own.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
    "${SUDO[@]}" chmod +x "$policy"
    created_policy=1
fi
status=0
{ "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1 || status=$?
if [[ $created_policy -eq 1 ]]; then
    "${SUDO[@]}" rm -f "$policy"
fi
if [[ $status -ne 0 ]]; then
    cat "$log" >&2
    echo "install_services.sh: installing ${missing[*]} failed (output above)." >&2
    exit 1
fi
command -v redis-server >/dev/null 2>&1 || { echo "install_services.sh: redis-server still missing" >&2; exit 1; }
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || { echo "install_services.sh: PostgreSQL still missing" >&2; exit 1; }
for tool in dockerd docker-compose debootstrap promtool; do
    command -v "$tool" >/dev/null 2>&1 || { echo "install_services.sh: $tool still missing" >&2; exit 1; }
done
