#!/usr/bin/env bash
# Install cpg-zoo for development and testing:
#   .venv        the project with every extra (torch, training, export, demo, dev)
#   .venv-olah   olah, the Hugging Face mirror server the Hub tests run on 127.0.0.1
#   chromium     Debian's headless browser + driver for the demo's browser test (as root only)
# Needs only the package registries (PyPI, Debian). Usage: bash scripts/install.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

"$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# torch 2.14.1 / torchvision 0.29.1 satisfy the ranges in pyproject.toml.
.venv/bin/python -m pip install --quiet -e ".[all,dev]"
.venv/bin/python -m pip check

# The local Hub server for tests lives in its own venv, so its dependencies stay out of ours.
"$PYTHON" -m venv .venv-olah
.venv-olah/bin/python -m pip install --quiet --upgrade pip
.venv-olah/bin/python -m pip install --quiet "olah==0.5.4"

# git (the Hub test server keeps repos as git repositories) and Chromium for the browser test.
missing=()
command -v git >/dev/null 2>&1 || missing+=(git)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "note: install ${missing[*]} with: sudo apt-get install -y ${missing[*]}" >&2
  fi
fi
echo "installed: $(.venv/bin/python -c 'import torch, onnxruntime; print("torch", torch.__version__, "| onnxruntime", onnxruntime.__version__)')"
