#!/usr/bin/env bash
# Build, on this machine, the wheels a lent GPU machine lacks, and print the one command that installs them there
# (offline) and runs every GPU check. The GPU machines have Python 3.12, torch, transformers, accelerate and peft, but
# no diffusers and no network; the GPU tests and benchmarks import nothing beyond these and the bundle.
#
#   bash scripts/gpu_bundle.sh            # writes .whl/ (git-ignored; carry it to the device with the working tree)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${BUNDLE_DIR:-.whl}
PY=${PYTHON:-.venv/bin/python}
DIFFUSERS=$("$PY" -c "import diffusers; print(diffusers.__version__)")

rm -rf "$OUT" && mkdir -p "$OUT"
# diffusers and its dependencies as wheels for Python 3.12 on x86-64 Linux...
"$PY" -m pip download -q --dest "$OUT/all" --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any "diffusers==$DIFFUSERS" pytest
# ...less what the GPU machine already has (torch pulls numpy, the NVIDIA libraries and triton).
for wheel in "$OUT"/all/*.whl; do
  case "$(basename "$wheel" | tr 'A-Z' 'a-z')" in
    torch-*|numpy-*|nvidia_*|triton-*|transformers-*|tokenizers-*|accelerate-*|peft-*) ;;
    *) mv "$wheel" "$OUT/" ;;
  esac
done
rm -rf "$OUT/all"
# The project itself is not bundled: the working tree travels with it (the mini weights included), and a wheel of
# it beside the tree would pass the device tool's 64 MiB limit. It is imported from the tree (PYTHONPATH).

size=$(du -sm "$OUT" | cut -f1)
echo "Bundle: $OUT ($size MB): $(ls "$OUT" | tr '\n' ' ')"
if [ "$size" -gt 64 ]; then
  echo "The bundle is over 64 MB, the device tool's limit." >&2
  exit 1
fi
cat <<EOF

On the GPU machine (carry $OUT), from the repository root:

export PYTHONPATH=\$PWD; python3 -m pip install -q --no-index --find-links $OUT diffusers==$DIFFUSERS pytest && python3 -m pytest -q tests/test_gpu.py -m gpu -p no:cacheprovider; python3 benchmarks/gpu_fullsize.py
EOF
