#!/usr/bin/env bash
# Side by side: our OpenAPI detection/generator and dlt-init-openapi on the same descriptions.
# Compares streams found, pagination detected, auth detected and wall time, and prints a
# Markdown table (the source of BENCHMARKS.md's "OpenAPI generator vs dlt-init-openapi").
# Not part of the test suite. Usage: bash .ci/compare-dlt.sh [spec-name ...]
#
# dlt-init-openapi goes into a venv under .cache/. Two adjustments make it run here:
# - click/typer are pinned to the versions its CLI was written for, and setuptools < 70 keeps
#   `pkg_resources` (dlt 0.4 imports it);
# - it copies dlt's `rest_api` verified source from GitHub into every output; with only package
#   registries reachable, placeholder files are put where it caches that source. The pipeline
#   code it generates is not run; only its config (resources, paginators, auth) is compared.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.cache/dlt-venv"
TIMEOUT="${DLT_TIMEOUT:-900}"
bash .ci/fetch-fixtures.sh
if [ ! -x "$VENV/bin/dlt-init-openapi" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "dlt-init-openapi==0.1.0" "click<8.2" "typer<0.13" "setuptools<70"
fi
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
mkdir -p "$SITE/rest_api"
for f in README.md __init__.py config_setup.py exceptions.py requirements.txt typing.py utils.py; do
  [ -e "$SITE/rest_api/$f" ] || echo "# placeholder: the rest_api verified source is not reachable offline" >"$SITE/rest_api/$f"
done
cargo build --release --quiet
BIN="$ROOT/target/release/connector-factory"
FIX="$ROOT/.cache/fixtures"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/scaffolds" "$WORK/registry"
"$BIN" scaffold --pack registry/_scaffold/meta --write "$WORK/scaffolds/meta.json" >/dev/null
"$BIN" scaffold --pack registry/_scaffold/python --write "$WORK/scaffolds/python.json" >/dev/null

ALL=(github=github/api.github.com.json stripe=stripe.json openai=openai.json asana=asana.json spotify=spotify.json
     slack=slack.json twilio=twilio.json notion=notion.json petstore-swagger2=petstore-swagger2.yaml)
if [ $# -gt 0 ]; then
  SEL=(); for want in "$@"; do for e in "${ALL[@]}"; do [ "${e%%=*}" = "$want" ] && SEL+=("$e"); done; done
else
  SEL=("${ALL[@]}")
fi
now() { python3 -c "import time; print(time.time())"; }

echo "| spec | ours: collection streams / generated | dlt: resources | both found | pagination agrees (of both) | ours: pagination | dlt: paginators | auth ours / dlt | ours s (detect all + generate 5) | dlt s |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for entry in "${SEL[@]}"; do
  name="${entry%%=*}"; file="$FIX/${entry#*=}"
  t0=$(now)
  "$BIN" openapi "$file" detect --max 100000 --json --budget 100000000 >"$WORK/$name.ours.json"
  "$BIN" generate --openapi "$file" --name "$name" --out "$WORK/registry" --scaffolds "$WORK/scaffolds" >/dev/null 2>&1 || true
  ours_s=$(python3 -c "import sys,time; print('%.2f' % (time.time()-float(sys.argv[1])))" "$t0")
  extra=(); case "$file" in *swagger2*) extra=(--allow-openapi-2);; esac
  t0=$(now)
  if (cd "$WORK" && timeout "$TIMEOUT" "$VENV/bin/dlt-init-openapi" "$name" --path "$file" --output-path "$WORK/dlt-$name" \
        --no-interactive "${extra[@]}" >"$WORK/$name.dlt.log" 2>&1); then dlt_ok=1; else dlt_ok=0; fi
  dlt_s=$(python3 -c "import sys,time; print('%.2f' % (time.time()-float(sys.argv[1])))" "$t0")
  python3 - "$WORK/$name.ours.json" "$WORK/dlt-$name" "$name" "$ours_s" "$dlt_s" "$dlt_ok" <<'PY'
import ast, glob, json, sys
ours_path, dlt_dir, name, ours_s, dlt_s, dlt_ok = sys.argv[1:]
ours = json.load(open(ours_path))
streams = ours["streams"]
ours_pag = {}
for s in streams:
    ours_pag[s["collection"]["value"]["path"]] = s["pagination"]["value"]["type"]

def literal(node):
    """ast -> python value; names (variables) become their identifier."""
    if isinstance(node, ast.Dict):
        return {literal(k): literal(v) for k, v in zip(node.keys, node.values) if k is not None}
    if isinstance(node, (ast.List, ast.Tuple)):
        return [literal(e) for e in node.elts]
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return ast.unparse(node)
    return ast.unparse(node)

resources, client = [], {}
init = [p for p in glob.glob(dlt_dir + "/*/*/__init__.py") if "/rest_api/" not in p]
if init:
    tree = ast.parse(open(init[0]).read())
    for n in ast.walk(tree):
        if isinstance(n, ast.AnnAssign) and isinstance(n.value, ast.Dict) or isinstance(n, ast.Assign) and isinstance(n.value, ast.Dict):
            cfg = literal(n.value)
            if isinstance(cfg, dict) and "resources" in cfg:
                resources = cfg["resources"]
                client = cfg.get("client", {})
                break
# dlt paginator names -> ours
MAP = {"json_link": "next_url", "header_link": "link_header", "offset": "offset", "page_number": "page",
       "cursor": "cursor", "json_response_cursor": "cursor", "json_response": "next_url", "single_page": "none", "auto": "auto"}
def pag_type(p):
    if isinstance(p, dict):
        return p.get("type", "?")
    return str(p) if p else None
global_pag = pag_type(client.get("paginator"))
dlt_pag = {}
for r in resources:
    if not isinstance(r, dict):
        continue
    ep = r.get("endpoint", {}) if isinstance(r.get("endpoint"), dict) else {}
    path = ep.get("path") or r.get("endpoint")
    if not isinstance(path, str):
        continue
    t = pag_type(ep.get("paginator")) or global_pag or "auto"
    dlt_pag[path] = MAP.get(t, t)
both = sorted(set(ours_pag) & set(dlt_pag))
agree = sum(1 for p in both if ours_pag[p] == dlt_pag[p])
def hist(d):
    h = {}
    for v in d.values():
        h[v] = h.get(v, 0) + 1
    return ", ".join("%s %d" % kv for kv in sorted(h.items(), key=lambda kv: -kv[1]))
auth = client.get("auth") if isinstance(client, dict) else None
dlt_auth = auth.get("type", "?") if isinstance(auth, dict) else ("none" if not auth else str(auth))
gen = "5" if streams else "0"
gen = str(min(5, sum(1 for s in streams if s["collection"]["confidence"] >= 0.5 and s["primary_key"]["value"])))
dlt_col = str(len(dlt_pag)) if dlt_ok == "1" else "failed"
print("| %s | %d / %s | %s | %d | %d of %d | %s | %s | %s / %s | %s | %s |" % (
    name, len(streams), gen, dlt_col, len(both), agree, len(both), hist(ours_pag) or "-", hist(dlt_pag) or "-",
    ours["auth"]["value"]["type"], dlt_auth, ours_s, dlt_s))
PY
done
