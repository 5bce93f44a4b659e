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
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# llama-cpp-python builds from source the first time (about 6 minutes on 2 cores). Built for "this CPU"
# (llama.cpp's default), it dies with SIGILL on virtual machines whose CPU reports AMX or AVX-512 the
# guest may not use; so it is built for portable AVX2 once, kept in our own wheel folder (pip's cache is
# keyed by the source, not the build flags, and would hand back a native build), and installed from there.
LLAMA_VERSION="${LLAMA_VERSION:-0.3.36}"
WHEELS="${WORKBENCH_WHEELS:-$HOME/.cache/workbench/wheels/llama-portable-avx2}"
if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
  echo "setup: building llama-cpp-python $LLAMA_VERSION for portable AVX2 (about 6 minutes on 2 cores)" >&2
  mkdir -p "$WHEELS"
  CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON}" \
    .venv/bin/python -m pip wheel -q --no-deps --no-cache-dir -w "$WHEELS" "llama-cpp-python==$LLAMA_VERSION"
fi
.venv/bin/python -m pip install -q --find-links "$WHEELS" -e '.[local,dev]' "llama-cpp-python[server]==$LLAMA_VERSION"
if [ ! -f ".venv/.llama-$LLAMA_VERSION-portable" ]; then  # replace a native build an older setup installed
  .venv/bin/python -m pip install -q --no-deps --force-reinstall "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl
  touch ".venv/.llama-$LLAMA_VERSION-portable"
fi
echo "setup: done ($(.venv/bin/python --version), workbench $(.venv/bin/python -c 'import workbench; print(workbench.__version__)'))" >&2
