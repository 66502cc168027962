#!/usr/bin/env bash
# Installs the TypeScript scaffold's dev dependencies (the compiler and Node's type definitions,
# pinned in its package-lock.json) once, so that npm's cache holds them and the `npm ci
# --prefer-offline` run by tests/typescript_runtime.rs needs no download.
#
# Idempotent: the install lives in .cache/node/typescript-scaffold/ (git-ignored) and is redone
# only when the template's package.json or package-lock.json change. Optional: the Rust test
# installs by itself when the cache is cold.
set -euo pipefail
cd "$(dirname "$0")/.."

template='registry/_scaffold/typescript/{connector}/{version}/{author}/typescript/{implementation}'
target=.cache/node/typescript-scaffold

if ! command -v npm >/dev/null 2>&1; then
  echo "install-node-deps: npm is not installed (Node.js 20+ with npm is needed for the TypeScript runtime tests)" >&2
  exit 1
fi

stamp="$(cat "$template/package.json" "$template/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [ -f "$target/.stamp" ] && [ "$(cat "$target/.stamp")" = "$stamp" ] && [ -d "$target/node_modules" ]; then
  echo "install-node-deps: up to date ($target)"
  exit 0
fi

rm -rf "$target"
mkdir -p "$target"
cp "$template/package.json" "$template/package-lock.json" "$target/"
(cd "$target" && npm ci --prefer-offline --no-audit --no-fund --ignore-scripts)
echo "$stamp" > "$target/.stamp"
echo "install-node-deps: installed into $target"
