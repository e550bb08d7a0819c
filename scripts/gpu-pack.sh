#!/usr/bin/env bash
# Before a GPU session, here: build what scripts/gpu-check.sh runs into .gpu/pack.tar.xz
# (git-ignored; carry [".gpu"] takes it to the device, where nothing needs installing):
#   build/  gllmk, gllm_bench, gllm_synth_model, and the CUDA suites and the CPU kernels' and
#           API suites built against the stand-in test runner (the GPU machine has no Criterion);
#   peer/   llama.cpp's CUDA build, when bench/peers/cuda_setup.sh has made it;
#   base/   gllm_bench of the last commit measured on a GPU (BASE below, or GLLM_BASE=REV; its
#           sm_90 cubin alone), so that one run times the model before and after what came since.
# On the device: bash scripts/gpu-check.sh (it unpacks .gpu/pack.tar.xz when present).
# --models [all]: also the models fetched here (SmolLM2, 98 MB; all: MiniLM's 91 MB too), over a
# call's 64 MiB (the tracked tree, ~28 MiB, counts too), as .gpu/models.partNN of 34 MiB and
# .gpu/models.sum: carry each part by a call of its own (what earlier calls carried stays on a
# warm device), models.sum with the first of them (the pack alone first: scripts/gpu-call.sh);
# gpu-check.sh unpacks them once all have arrived, and the real-model GPU tests run.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --models ]; then
  files=models/SmolLM2-135M-Instruct.Q4_1.gguf
  [ "${2:-}" = all ] && files="$files models/all-MiniLM-L6-v2"
  mkdir -p .gpu && rm -f .gpu/models.part* .gpu/models.sum
  tar cf - $files | split -b 34M -d - .gpu/models.part
  (cd .gpu && sha256sum models.part* > models.sum)
  ls -s --block-size=M .gpu/models.part*
fi
B=build-gpu P=build-gpu/pack
BASE=${GLLM_BASE:-6b19f1b} # move it on when a GPU run measures a later commit
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release -DGLLM_STANDIN_RUNNER=ON >/dev/null
cmake --build $B -j "$(nproc)" --target gllmk gllm_bench gllm_synth_model test_cuda test_cuda_sample test_kernels test_api >/dev/null
rm -rf $P && mkdir -p $P/build/tests $P/build/bench
cp $B/gllmk $P/build/ && cp $B/bench/gllm_bench $P/build/bench/
cp $B/tests/test_cuda $B/tests/test_cuda_sample $B/tests/test_kernels $B/tests/test_api $B/tests/gllm_synth_model $P/build/tests/
git log -1 --format='%h %s' > $P/build/COMMIT
pwd > $P/build/SOURCE_DIR # where the suites look for models/
git diff --quiet HEAD || echo "(with uncommitted changes)" >> $P/build/COMMIT
if [ -d .peers-cuda/llama_cpp_python ]; then cp -a .peers-cuda/llama_cpp_python $P/peer
else echo "no llama.cpp peer in the pack: bash bench/peers/cuda_setup.sh makes it"; fi
# the baseline, from a worktree of BASE (built once; the other archs' cubins emptied: the pack
# has room for one)
W=build-gpu/base
base=$(git rev-parse --verify "$BASE^{commit}") || { echo "baseline $BASE: no such commit here"; exit 1; }
if [ "$(cat $W/COMMIT 2>/dev/null)" != "$base" ]; then
  rm -rf $W && git worktree prune && git worktree add -f --detach $W/src "$base" >/dev/null
  for sm in 80 86 89; do : > $W/src/cubin/kernels_sm$sm.cubin; done
  { cmake -S $W/src -B $W/build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGLLM_TESTS=OFF &&
    cmake --build $W/build -j "$(nproc)" --target gllm_bench; } > $W/build.log 2>&1 || { tail -n 30 $W/build.log; exit 1; }
  echo "$base" > $W/COMMIT
fi
mkdir -p $P/base && cp $W/build/bench/gllm_bench $P/base/ && git log -1 --format='%h %s' "$base" > $P/base/COMMIT
# one stream with a 64 MiB window: the binaries' copies of the same cubins cost one
mkdir -p .gpu && tar cf - -C $P . | xz -9 > .gpu/pack.tar.xz
echo ".gpu/pack.tar.xz: $(du -h .gpu/pack.tar.xz | cut -f1) ($(ls $P | tr '\n' ' '))"
