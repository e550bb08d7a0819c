#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: build, run the CUDA tests (every kernel against the CPU),
# compute-sanitizer on the CUDA test binary, and write a summary to ${OUT:-.}/gpu-check.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-.}/gpu-check.txt
{
  echo "== $(date -u) $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build build-gpu -j "$(nproc)" >/dev/null
  echo "== CUDA tests"; ./build-gpu/tests/test_cuda --verbose 2>&1 | tail -n 20
  echo "== backend"; GLLM_DEVICE=cuda:0 ./build-gpu/gllmk info 2>&1 | head -n 3
  if command -v compute-sanitizer >/dev/null; then
    echo "== compute-sanitizer"; compute-sanitizer --tool memcheck ./build-gpu/tests/test_cuda --filter 'cuda/gemv*' 2>&1 | tail -n 5
  fi
} 2>&1 | tee "$out"
