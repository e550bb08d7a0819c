#!/usr/bin/env bash
# The test command (README): build, then run every test the machine can run.
#   native Release build: Criterion suites (every kernel on scalar/avx2/avx512/amx as the CPU allows;
#     the CUDA suites on the CUDA emulator; their longest tests again with threads in reverse order;
#     the encoders against numpy; gllmk on a chat prompt)
#   the public API's and the fused projections' suites with GLLM_ISA capped to each ISA
#   AddressSanitizer + UBSan build: the suites again
#   ThreadSanitizer build: the other CUDA tests, where a data race between device threads fails
#   NEON: cross-compiled, the kernel driver under qemu-aarch64
#   fuzz: the GGUF reader (and the tokenizer it loads) for 20 s under libFuzzer
#   install: cmake --install, then a consumer built with find_package and pkg-config
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
step() { printf "== [%dm%02ds] %s\n" $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }  # a step, with the time so far

step "codegen check"
python3 -m codegen check

if command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; then
  step "CUDA: recompile the kernels for sm_80/86/89/90 and compare with cubin/"
  bash scripts/compile_kernels.sh --check
else
  step "CUDA: nvcc not found, cubin/ not re-checked"
fi

step "native build + tests"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"
# The CUDA suites' longest tests: the race check below leaves them to a second run on the
# emulator, with each block's threads last to first between barriers (a missing barrier
# changes a result). Both checks passed on every test when they were set up.
long_cuda='generator_matches_cpu|long_context_matches_cpu|batch_matches_cpu|matmul_kernels_match_the_cpu|smollm2_matches_reference'
long_sample='temperature|top_k|top_p|min_p|combined|penalties|reproducible'
if [ -e build/tests/cuda_emu/lib/libcuda.so.1 ]; then
  step "CUDA suites' longest tests on the emulator again, threads last to first between barriers"
  GLLM_EMU_ORDER=reverse LD_LIBRARY_PATH=build/tests/cuda_emu/lib ./build/tests/test_cuda --jobs 2 --filter "cuda/@($long_cuda)"
  GLLM_EMU_ORDER=reverse LD_LIBRARY_PATH=build/tests/cuda_emu/lib ./build/tests/test_cuda_sample --jobs 2 --filter "cuda_sample/@($long_sample)"
  step "CUDA suites on the emulator as an sm_86 device (99 KB of shared memory a block, 84 SMs, no dependent launches)"
  GLLM_EMU_SM=86 LD_LIBRARY_PATH=build/tests/cuda_emu/lib ./build/tests/test_cuda --jobs 2
  GLLM_EMU_SM=86 LD_LIBRARY_PATH=build/tests/cuda_emu/lib ./build/tests/test_cuda_sample --jobs 2
fi
step "reranker and embedding poolings on a synthetic cross-encoder vs an independent numpy forward"
python3 tests/reference/encoder_numpy.py build/gllmk
if [ -s models/all-MiniLM-L6-v2/model.safetensors ]; then
  step "embeddings (all-MiniLM-L6-v2) vs the numpy forward"
  python3 tests/reference/minilm_numpy.py build/gllmk models/all-MiniLM-L6-v2
  step "gllmk embeds an empty text (it looped forever on the empty argument) and fails when its --out file is not written"
  timeout 60 ./build/gllmk embed "" >/dev/null 2>&1 || { echo "embed \"\": exit $?"; exit 1; }
  if ./build/gllmk embed --out /dev/full x >/dev/null 2>&1; then echo "embed --out /dev/full: exit 0"; exit 1; fi
fi
if [ -s models/SmolLM2-135M-Instruct.Q4_1.gguf ]; then
  step "gllmk on a chat prompt from a file: its control tokens read (llama.cpp's ids), generation stopped at <|im_end|>"
  chat=$(mktemp)
  printf '<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n' > "$chat"
  ids=$(./build/gllmk tokenize -f "$chat" 2>/dev/null | awk '{printf "%s,", $1}')
  [ "$ids" = "1,4093,198,1780,314,260,3575,282,4649,47,2,198,1,520,9531,198," ] || { echo "tokenize: $ids"; exit 1; }
  out=$(./build/gllmk generate -f "$chat" -n 48 2>/dev/null)
  [ "$(printf '%s' "$out" | grep -c 'im_end')" = 1 ] && printf '%s' "$out" | grep -q Paris || { echo "generate: $out"; exit 1; }
  rm -f "$chat"
  step "gllmk logits of 2100 positions (its cache held 2048 whatever the model's context)"
  ./build/gllmk logits --tokens "$(seq 100 2199 | paste -sd,)" >/dev/null 2>&1 || { echo "logits of 2100 ids: exit $?"; exit 1; }
fi
step "gllmk logits on a vocabulary of 8 (its top-10 stops at 8 ids, each once); an id past it refused"
tiny=$(mktemp --suffix=.gguf)
./build/tests/gllm_synth_model "$tiny" f32 8 >/dev/null
top=$(./build/gllmk logits -m "$tiny" --tokens 1,2,7 2>/dev/null | awk '{print $1}' | sort -n | tr '\n' ,)
[ "$top" = "0,1,2,3,4,5,6,7," ] || { echo "logits: $top"; exit 1; }
if ./build/gllmk logits -m "$tiny" --tokens 1,8 >/dev/null 2>&1; then echo "logits: id 8 of 8 accepted"; exit 1; fi
step "gllmk refuses malformed option values before it loads anything (a count past int, text for a number, an option without its value)"
for args in "generate -m $tiny -n 4294967297" "generate -m $tiny --temp abc" "generate -m $tiny --top-k 3x" \
            "generate -m $tiny --seed -1" "embed hello --out" "rerank -m x -q"; do
  rc=0
  # shellcheck disable=SC2086
  ./build/gllmk $args >/dev/null 2>&1 || rc=$?
  [ "$rc" = 2 ] || { echo "gllmk $args: exit $rc, not 2 (a usage error)"; exit 1; }
done
rm -f "$tiny"
for isa in scalar avx2 avx512 amx; do
  if GLLM_ISA=$isa ./build/gllmk info >/dev/null 2>&1; then
    step "public API and the fused projections (each ISA's gemv/gemm policy) with GLLM_ISA=$isa"
    GLLM_ISA=$isa ./build/tests/test_api --jobs 2
    GLLM_ISA=$isa ./build/tests/test_fused --jobs 2
  else
    step "GLLM_ISA=$isa: not supported by this CPU, skipped"
  fi
done
for n in 1 3; do
  step "public API with GLLM_NUM_THREADS=$n"
  GLLM_NUM_THREADS=$n ./build/tests/test_api --jobs 2
done

step "AddressSanitizer + UBSan build + tests"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DGLLM_SANITIZE=ON -DGLLM_BENCH=OFF >/dev/null
cmake --build build-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure -j "$jobs"
echo "   the encoder's model files (safetensors + pooling config, GGUF) through gllmk under ASan"
ASAN_OPTIONS=detect_leaks=1 python3 tests/reference/encoder_numpy.py build-asan/gllmk

if [ -e build/tests/cuda_emu/lib/libcuda.so.1 ]; then
  step "race check: the CUDA suites on the emulator and the CPU's L3 suite (threads) under ThreadSanitizer"
  cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=Release -DGLLM_TSAN=ON -DGLLM_BENCH=OFF >/dev/null
  cmake --build build-tsan -j "$jobs" --target test_cuda test_cuda_sample test_race_check test_l3 cuda_emu
  export TSAN_OPTIONS=halt_on_error=1
  echo "   the check itself: racy kernels reported, ordered ones not"
  LD_LIBRARY_PATH=build-tsan/tests/cuda_emu/lib ./build-tsan/tests/test_race_check --jobs 2
  ./build-tsan/tests/test_l3 --jobs 2
  LD_LIBRARY_PATH=build-tsan/tests/cuda_emu/lib ./build-tsan/tests/test_cuda --jobs 2 --filter "cuda/!($long_cuda)"
  LD_LIBRARY_PATH=build-tsan/tests/cuda_emu/lib ./build-tsan/tests/test_cuda_sample --jobs 2 --filter "cuda_sample/!($long_sample)"
  unset TSAN_OPTIONS
fi

if command -v aarch64-linux-gnu-gcc >/dev/null && command -v qemu-aarch64 >/dev/null; then
  step "NEON: cross build, kernel driver under qemu-aarch64"
  cmake -S . -B build-neon -G Ninja -DCMAKE_TOOLCHAIN_FILE=scripts/aarch64-toolchain.cmake -DGLLM_BENCH=OFF >/dev/null
  cmake --build build-neon -j "$jobs" --target gllm_kernel_driver gllmk
  QEMU_LD_PREFIX=/usr/aarch64-linux-gnu qemu-aarch64 -cpu max build-neon/gllmk info
  QEMU_LD_PREFIX=/usr/aarch64-linux-gnu timeout -s KILL 900 qemu-aarch64 -cpu max build-neon/tests/gllm_kernel_driver
elif [ "${GLLM_CROSS:-1}" = 0 ]; then
  step "NEON: skipped (GLLM_CROSS=0)"
else
  step "NEON: aarch64 cross compiler or qemu missing (scripts/setup.sh installs them)"; exit 1
fi

step "fuzz: the GGUF reader under libFuzzer (ASan + UBSan)"
FUZZ_CC=$(command -v clang-14 || command -v clang) bash scripts/fuzz.sh 20

step "the library and gllmk link neither libcuda nor libcudart (the driver is loaded at run time)"
if ldd build/libgllm_kernels.so build/gllmk | grep -iE "libcuda|libcudart"; then echo "linked against CUDA"; exit 1; fi

step "install + consumer"
bash tests/install/run.sh build
step "all tests passed"
