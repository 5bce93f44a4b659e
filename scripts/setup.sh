#!/usr/bin/env bash
# Set up a fresh machine for Workbench: system packages (Graphviz, Chromium for the browser tests),
# a virtual environment in .venv, and the package with the embedded model and test extras.
# Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v dot >/dev/null 2>&1 || need_apt+=(graphviz)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "setup: installing ${need_apt[*]} with apt-get" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" fonts-dejavu-core >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$PYTHON" -m venv .venv
fi
# llama-cpp-python builds from source the first time (about 6 minutes on 2 cores); pip caches the wheel.
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[local,dev]'
echo "setup: done ($(.venv/bin/python --version), workbench $(.venv/bin/python -c 'import workbench; print(workbench.__version__)'))" >&2
