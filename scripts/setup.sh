#!/usr/bin/env bash
# Create .venv (once) and install the project with its dev tools. Safe to rerun.
# torch is installed first at the release that lies on this kind of machine's local disk (pip would otherwise pull
# a multi-GB CUDA build for a newer one); on other machines any torch>=2.4 does.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip "setuptools<81" wheel
python -c "import torch, torchvision" 2>/dev/null || python -m pip install -q torch==2.14.1 torchvision==0.29.1
python -m pip install -q -e ".[all,dev]"
