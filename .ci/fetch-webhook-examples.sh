#!/usr/bin/env bash
# Fetch GitHub's webhook payload examples (npm @octokit/webhooks-examples) for the event tests.
#
# Lands in .cache/webhooks-examples/ (git-ignored). Idempotent: when the pinned version is
# already unpacked nothing is fetched. The package is unpacked into a temporary folder and moved
# into place whole, so an interrupted run never leaves a partial copy behind.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${WEBHOOK_EXAMPLES_DIR:-$ROOT/.cache/webhooks-examples}"
VERSION="7.6.1"
STAMP="$DEST/.version"

log() { echo "fetch-webhook-examples: $*" >&2; }

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$VERSION" ] && [ -f "$DEST/package/api.github.com/index.json" ]; then
  exit 0
fi

command -v npm >/dev/null || { log "npm is not installed; it is needed to fetch @octokit/webhooks-examples"; exit 1; }

mkdir -p "$(dirname "$DEST")"
WORK="$(mktemp -d "$(dirname "$DEST")/.webhooks-examples.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

log "npm pack @octokit/webhooks-examples@$VERSION"
if ! (cd "$WORK" && npm pack --silent "@octokit/webhooks-examples@$VERSION" >/dev/null 2>"$WORK/npm.log"); then
  log "npm pack failed (is the npm registry reachable?):"
  cat "$WORK/npm.log" >&2
  exit 1
fi
TARBALL="$(ls "$WORK"/*.tgz | head -n1)"
mkdir -p "$WORK/out"
tar -xzf "$TARBALL" -C "$WORK/out"
[ -f "$WORK/out/package/api.github.com/index.json" ] || { log "the package has no api.github.com/index.json"; exit 1; }
echo "$VERSION" >"$WORK/out/.version"

rm -rf "$DEST"
mv "$WORK/out" "$DEST"
log "unpacked into $DEST"
