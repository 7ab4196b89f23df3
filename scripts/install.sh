#!/usr/bin/env bash
# Install cpg-zoo for development: a fresh virtual environment in .venv with every extra
# (torch, training, export, demo, dev). Needs only the package registries (PyPI; Debian for
# the optional system packages below). Usage: bash scripts/install.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

"$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# torch 2.14.1 / torchvision 0.29.1 satisfy the ranges in pyproject.toml.
.venv/bin/python -m pip install --quiet -e ".[all,dev]"
.venv/bin/python -m pip check
echo "installed: $(.venv/bin/python -c 'import torch, onnxruntime; print("torch", torch.__version__, "| onnxruntime", onnxruntime.__version__)')"
