#!/usr/bin/env bash
# Measure the builtin generator on the real descriptions in .cache/fixtures: for each one,
# generate a connector into a scratch registry, run `validate` and `spec-test` on it, and print
# a Markdown table (the source of docs/openapi-results.md). Not part of the test suite.
#
# The scaffolds are packed fresh from registry/_scaffold/{meta,python} so the measurement uses
# the runtime template as it is in the tree, even if python.json has not been re-packed yet.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash .ci/fetch-fixtures.sh
cargo build --release --quiet
BIN="$ROOT/target/release/connector-factory"
FIX="$ROOT/.cache/fixtures"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/scaffolds" "$WORK/registry"
cp -r registry/_schemas "$WORK/registry/_schemas"
"$BIN" scaffold --pack registry/_scaffold/meta --write "$WORK/scaffolds/meta.json"
"$BIN" scaffold --pack registry/_scaffold/python --write "$WORK/scaffolds/python.json"

now() { python3 -c "import time; print(time.time())"; }

SPECS=(
  "github=github/api.github.com.json"
  "stripe=stripe.json"
  "openai=openai.json"
  "asana=asana.json"
  "spotify=spotify.json"
  "slack=slack.json"
  "twilio=twilio.json"
  "notion=notion.json"
  "gitlab=gitlab.json"
  "trello=trello.json"
  "petstore-swagger2=petstore-swagger2.yaml"
  "petstore-openapi31=petstore-3.1.yaml"
)

echo "| spec | streams (pagination, primary key, incremental) | auth | unsure | validate | spec-test | generate s |"
echo "|---|---|---|---|---|---|---|"
for entry in "${SPECS[@]}"; do
  name="${entry%%=*}"; file="$FIX/${entry#*=}"
  out="$WORK/$name.json"
  start=$(now)
  if ! "$BIN" generate --openapi "$file" --name "$name" --out "$WORK/registry" --scaffolds "$WORK/scaffolds" --json >"$out" 2>"$WORK/$name.err"; then
    gen_s=$(python3 -c "import sys,time; print(time.time()-float(sys.argv[1]))" "$start")
    echo "| $name | none: $(tail -n1 "$WORK/$name.err" | sed 's/|/\\|/g' | cut -c1-160) | | | | | $(printf %.2f "$gen_s") |"
    continue
  fi
  gen_s=$(python3 -c "import sys,time; print(time.time()-float(sys.argv[1]))" "$start")
  dir="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["impl_dir"])' "$out")"
  summary="$(python3 - "$out" <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))
parts = []
for s in o["streams"]:
    parts.append("%s (%s, %s%s)" % (s["name"], s["pagination"], ",".join(s["primary_key"]), ", incr." if s["incremental"] else ""))
print("; ".join(parts) + " | " + o["auth"] + " | " + str(len(o["unsure"])))
PY
)"
  if "$BIN" validate "$dir" >"$WORK/$name.validate" 2>&1; then v="ok"; else v="**errors**"; fi
  if "$BIN" spec-test "$dir" --json "$WORK/$name.spec.json" >"$WORK/$name.spec" 2>&1; then st="pass"; else st="**fail**"; fi
  counts="$(grep -E '^ *[0-9]+ passed, [0-9]+ failed' "$WORK/$name.spec" | tail -n1 | sed 's/^ *//; s/ in .*//')"
  echo "| $name | $summary | $v | $st ($counts) | $(printf %.2f "$gen_s") |"
  if [ "$st" != "pass" ]; then grep -E '^ *FAIL' "$WORK/$name.spec" | sed "s/^ */    $name: /" >&2 || true; fi
done
