#!/usr/bin/env bash
# Fills a wheelhouse for an offline image build (`--build-arg PIP_NO_INDEX=1`): every pinned
# dependency of asrserve as a wheel (sdists are built here, where a compiler is), plus the build
# backend. A docker build cannot reach the package index (its certificate authority is trusted
# only on the host), so the wheels are prepared on the host. The wheels are cached by the hash of
# the pins, then hard-linked (or copied) into DEST.
#   scripts/build_wheelhouse.sh DEST           for deploy/docker/Dockerfile
#   scripts/build_wheelhouse.sh DEST --cuda    the CUDA libraries of Dockerfile.cuda (1.3 GB)
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:?usage: build_wheelhouse.sh DEST [--cuda]}
python=${PYTHON:-$(command -v python3.11 || command -v python3)}
cache=${ASRSERVE_TOOLS_CACHE:-$HOME/.cache/asrserve-tools}

link_wheels() {
    mkdir -p "$dest"
    for wheel in "$wheels"/*.whl; do
        ln -f "$wheel" "$dest/" 2>/dev/null || cp -f "$wheel" "$dest/"
    done
    echo "$dest"
}

if [[ ${2:-} == --cuda ]]; then
    wheels=$cache/wheelhouse-cuda-$(sha256sum <deploy/docker/cuda-requirements.txt | cut -c1-16)
    if [[ ! -e $wheels/.complete ]]; then
        rm -rf "$wheels"
        mkdir -p "$wheels"
        "$python" -m pip download --quiet --disable-pip-version-check --no-deps \
            --dest "$wheels" --requirement deploy/docker/cuda-requirements.txt
        touch "$wheels/.complete"
    fi
    link_wheels
    exit 0
fi
key=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
wheels=$cache/wheelhouse-$key
if [[ ! -e $wheels/.complete ]]; then
    rm -rf "$wheels"
    mkdir -p "$wheels"
    # The dependencies only: the image builds asrserve itself from the checkout.
    deps=$(mktemp)
    trap 'rm -f "$deps"' EXIT
    "$python" - "$deps" <<'PY'
import sys
import tomllib

with open("pyproject.toml", "rb") as fh:
    pyproject = tomllib.load(fh)
requirements = pyproject["project"]["dependencies"] + pyproject["build-system"]["requires"]
# Debian bookworm's Python is 3.11.2, and redis needs async-timeout below 3.11.3: the host
# (3.11.7) would leave it out.
requirements.append("async-timeout")
with open(sys.argv[1], "w") as out:
    out.write("\n".join(requirements) + "\n")
PY
    "$python" -m pip wheel --quiet --disable-pip-version-check --constraint constraints.txt \
        --wheel-dir "$wheels" --requirement "$deps"
    touch "$wheels/.complete"
fi
link_wheels
