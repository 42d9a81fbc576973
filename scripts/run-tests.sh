#!/usr/bin/env bash
# The test command: lint, then every test, end-to-end ones included (they build the images
# and start the real compose stack, so Docker must be running). Extra arguments go to pytest,
# e.g. `scripts/run-tests.sh -m "not e2e"` for the tests that need no Docker.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
stamp="$venv/.installed-$(cat constraints.txt tests/requirements.txt labs/pyproject.toml hub/pyproject.toml lab-extension/pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  echo "==> Preparing the test virtualenv in $venv (first time: downloads torch, a few minutes)"
  python3 -m venv "$venv"
  # Only this project's pins apply: a machine's pip config or local wheel folder must not
  # swap in another build of torch (torchvision only loads with the torch it was built for).
  env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null "$venv/bin/pip" install --quiet \
    --disable-pip-version-check -c constraints.txt -r tests/requirements.txt -e labs -e hub -e lab-extension
  touch "$stamp"
fi

echo "==> ruff"
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .

echo "==> pytest"
# The slowest tests are listed at the end: where CI's minutes go.
exec "$venv/bin/python" -m pytest --durations=30 "$@"
