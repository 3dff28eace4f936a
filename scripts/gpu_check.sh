#!/usr/bin/env bash
# The CUDA tier in one command (about 3 minutes on one GPU): PyTorch, TorchScript, .pt2, ONNX Runtime
# (CUDA provider) and TensorFlow where it sees the GPU, against the CPU float32 reference.
#   scripts/gpu_check.sh            # logs under $OUT (if set) or ./gpu-check
# Each failure is printed with its reason as it happens (and appended to failures.log); the
# versions, the GPU and the TF32 settings are written first to environment.txt.
set -u
cd "$(dirname "$0")/.."
LOGS="${OUT:-gpu-check}"
mkdir -p "$LOGS"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export BGMV2_FAILURE_LOG="$LOGS/failures.log"
export BGMV2_PARITY_WORKERS="${BGMV2_PARITY_WORKERS:-4}"   # matrix files built in parallel on the GPU host's CPUs
export BGMV2_PARITY_THREADS="${BGMV2_PARITY_THREADS:-2}"
: > "$BGMV2_FAILURE_LOG"
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || echo "nvidia-smi: not available"
  python - <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(0))
print("TF32 defaults: matmul", torch.backends.cuda.matmul.allow_tf32, "cudnn", torch.backends.cudnn.allow_tf32,
      "(the parity checks switch both off: fp32 means fp32)")
try:
    import onnxruntime
    print("onnxruntime", onnxruntime.__version__, onnxruntime.get_available_providers())
except ImportError:
    print("onnxruntime: not installed")
PY
} > "$LOGS/environment.txt" 2>&1
cat "$LOGS/environment.txt"
timeout "${GPU_CHECK_TIMEOUT:-180}" python -m pytest -p tests.failure_log -m "cuda and not slow" -v --tb=short \
  -rfEs --durations=10 -o addopts="" tests/parity/test_matrix.py tests/parity/test_cuda.py tests/test_torchscript.py \
  2>&1 | tee "$LOGS/pytest.log"
status=${PIPESTATUS[0]}
echo "exit status $status (124: the time limit cut the run; failures so far are in $BGMV2_FAILURE_LOG)" | tee -a "$LOGS/pytest.log"
exit "$status"
