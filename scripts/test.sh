#!/usr/bin/env bash
# Set up, then run every test: kernels, generator, site build, links and the browser
# tests (headless Debian chromium, installed here when missing and run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test: installing Debian chromium for the browser tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "test: /usr/bin/chromium is missing; install Debian's chromium (apt-get install chromium)" >&2
    exit 1
  fi
fi

export NO_MKDOCS_2_WARNING=1
exec .venv/bin/python -m pytest "$@"
