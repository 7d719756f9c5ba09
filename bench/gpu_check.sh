#!/usr/bin/env bash
# The GPU check: what to run when a GPU is lent (a few minutes). Run after `make setup`, from any folder:
#
#   bash bench/gpu_check.sh
#
# 1. llama-cpp-python with CUDA: if the installed build cannot offload, build it once with CMAKE_ARGS=-DGGML_CUDA=on
#    into .venv-gpu (a venv layered over .venv: only llama-cpp-python differs; needs the CUDA toolkit and the
#    package's source from the registry or pip's cache);
# 2. the default pair with n_gpu_layers=-1: load, prefill and decode rates, a batch of 8 sub-calls
#    -> bench/results/pair-gpu.json;
# 3. the sub-call throughput ratios (c)/(a) and (c)/(b) of bench/subcalls.py -> bench/results/subcalls-gpu.json;
# 4. one quick-profile family (niah at 8K and 1M tokens, base and rlm, every layer offloaded)
#    -> bench/results/quick-niah-gpu.json (and its folder bench/results/quick-niah-gpu/).
#
# On a machine without an NVIDIA GPU (no working `nvidia-smi -L`) it says "no GPU" and exits 0 at once.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
  echo "gpu_check: no GPU (no working nvidia-smi); nothing to measure"
  exit 0
fi
nvidia-smi -L

VENV=.venv
if [ ! -x "$VENV/bin/python" ]; then
  echo "gpu_check: $VENV is missing: run 'make setup' first" >&2
  exit 1
fi
offloads() { "$1" -c 'import llama_cpp, sys; sys.exit(0 if llama_cpp.llama_supports_gpu_offload() else 1)' 2>/dev/null; }

PY="$VENV/bin/python"
if ! offloads "$PY"; then
  GPU_VENV=.venv-gpu
  PY="$GPU_VENV/bin/python"
  if ! offloads "$PY"; then
    version=$("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("llama-cpp-python"))')
    echo "gpu_check: building llama-cpp-python $version with CUDA into $GPU_VENV (several minutes, once)"
    "$VENV/bin/python" -m venv "$GPU_VENV"
    site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    gsite=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    # .venv's packages (outcore itself included) behind this venv's own: only llama-cpp-python is replaced
    echo "import site; site.addsitedir('$site')" > "$gsite/outcore-base.pth"
    CMAKE_ARGS="-DGGML_CUDA=on" FORCE_CMAKE=1 "$PY" -m pip install --disable-pip-version-check --no-deps \
      --force-reinstall --no-binary llama-cpp-python "llama-cpp-python==$version"
    if ! offloads "$PY"; then
      echo "gpu_check: the CUDA build of llama-cpp-python cannot offload (see the build log above)" >&2
      exit 1
    fi
  fi
fi
echo "gpu_check: llama.cpp offloads to the GPU ($PY)"

echo "gpu_check: 1/3 default pair, n_gpu_layers=-1"
timeout 600 "$PY" -m bench.gpu --out bench/results/pair-gpu.json

echo "gpu_check: 2/3 sub-call ratios (c)/(a), (c)/(b)"
timeout 900 "$PY" -m bench.subcalls --out bench/results/subcalls-gpu.json

echo "gpu_check: 3/3 one quick-profile family (niah), every layer on the GPU"
out=bench/results/quick-niah-gpu
timeout 1200 "$PY" -m engine.cli bench --profile quick --families niah --sizes 8k,1m --methods oracle,baseline,base,rlm \
  --n-gpu-layers -1 --out "$out" --no-progress
cp "$out/summary.json" bench/results/quick-niah-gpu.json
echo "gpu_check: done: bench/results/pair-gpu.json, subcalls-gpu.json, quick-niah-gpu.json"
