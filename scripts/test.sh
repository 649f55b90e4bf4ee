#!/usr/bin/env bash
# Installs everything the tests need and runs them (the README's test command; CI runs it too).
# The browser test drives Debian's chromium: it is installed here when missing and apt-get is
# usable (root); elsewhere that one test is skipped locally, but it is required in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 \
    && [ "$(id -u)" = 0 ]; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
fi
python3 -m venv .venv
.venv/bin/pip install -q -r requirements-dev.txt
exec .venv/bin/python -m pytest "$@"
