#!/usr/bin/env bash
# Ready for a GPU in one call (issue 22, item 6). On a machine with an NVIDIA GPU and its driver:
#
#     benchmarks/gpu_check.sh [--sharp-weights SiamMask_DAVIS.pth]
#
# installs the torch and gpu extras into $PYTHON's environment (with torch's CUDA build, whose
# tensors the TensorRT engine runs on, where a CPU build is installed), then runs
# benchmarks/gpu_check.py: it exports the default and the sharp model for ONNX Runtime's CUDA
# provider and TensorRT in fp32 and fp16, checks each against ONNX Runtime on the CPU and prints one
# JSON line of step times (1, 8 and 32 targets). The check itself is bounded to 9 minutes (the
# installs before it are not). Exit status: 0 parity held, 1 it did not (or an install failed),
# 2 no GPU here.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
nvidia-smi -L > /dev/null 2>&1 || { echo "gpu_check: no NVIDIA GPU here (nvidia-smi -L failed)" >&2; exit 2; }
install() { "$python" -m pip install -q --disable-pip-version-check "$@"; }
install -e ".[torch,gpu]"
# The README's first command installs torch's CPU build; the TensorRT engine needs the CUDA one
# (PyPI's Linux torch).
if ! "$python" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
  install --force-reinstall "torch==$("$python" -c 'import torch; print(torch.__version__.split("+")[0])')" \
    --index-url https://pypi.org/simple
fi
# onnxruntime-gpu and the CPU onnxruntime (a requirement of siammask) both install onnxruntime/: the
# CPU one goes and the GPU one is laid anew.
"$python" -m pip uninstall -y -q --disable-pip-version-check onnxruntime
install --force-reinstall --no-deps "onnxruntime-gpu>=1.17"
"$python" -c 'import sys, onnxruntime as o; sys.exit("CUDAExecutionProvider" not in o.get_available_providers())' \
  || { echo "gpu_check: onnxruntime has no CUDA provider after the install" >&2; exit 1; }
exec timeout 540 "$python" benchmarks/gpu_check.py "$@"
