#!/usr/bin/env bash
# gllm-kernels next to llama.cpp on this machine, in one run, same threads and workloads:
#   1. kernels: gllmk bench's gemv / gemm / attention table with ggml's time for each line;
#   2. SmolLM2-135M (or $1): both logits of a prompt at every position, the greedy
#      continuation, and prefill 512 / decode 64 / batched decode speed, alternating ours
#      (zero-copy weights, then GLLM_TILED=1) and theirs;
#   3. all-MiniLM-L6-v2 written as GGUF by llama.cpp's writer: the vectors of a few
#      sentences from both, and 32 x 128-token throughput, both on that one file.
# Needs a build (cmake --build build) and the models (scripts/fetch_models.sh); installs
# the peer itself (bench/peers/setup.sh: python3-venv and a C++ compiler).
# Usage: bash bench/peers/compare.sh [model.gguf]  (part 2's prompt ids are SmolLM2's vocabulary)
set -euo pipefail
cd "$(dirname "$0")/../.."
GGML_LIB=$(bash bench/peers/setup.sh)
export GLLM_GGML_LIB=$GGML_LIB
export GLLM_NUM_THREADS=${GLLM_NUM_THREADS:-$(nproc)}
export GLLM_DEVICE=${GLLM_DEVICE:-cpu}  # the peer is llama.cpp's CPU build
PY=.peers/bin/python PEER=bench/peers/llama_peer.py GLLMK=${GLLMK:-build/gllmk}
MODEL=${1:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
OUT=build/peers && mkdir -p $OUT
echo "== llama-cpp-python $($PY -c 'import llama_cpp; print(llama_cpp.__version__)'), $GLLM_NUM_THREADS threads, $(date -u)"

KERNEL_OPS=${KERNEL_OPS-gemv,gemm,attn}  # KERNEL_OPS= skips part 1
if [ -n "$KERNEL_OPS" ]; then
  echo; echo "== 1. kernels (ggml through $GGML_LIB)"
  $GLLMK bench --op "$KERNEL_OPS"
fi

echo; echo "== 2. $MODEL"
IDS=504,3575,282,4649,314  # "The capital of France is" (SmolLM2's tokenizer)
# The file's pages dropped from the page cache, then read in through our mapping first: it asks
# for 2 MiB folios, one TLB entry each, and keeps them; pages first faulted by llama.cpp's mapping
# (or both at once, as this did) come in small folios, and our zero-copy decode then ran 4.7 ms
# a token, not 3.3 (llama.cpp maps 4 KiB pages either way).
$PY -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$MODEL"
echo "-- top-10 after the prompt: ours | llama.cpp"
$GLLMK logits -m "$MODEL" --tokens $IDS --out $OUT/ours.f32 2>/dev/null > $OUT/ours.top
$PY $PEER logits "$MODEL" $IDS $OUT/theirs.f32 > $OUT/theirs.top
paste $OUT/ours.top $OUT/theirs.top
$PY - "$OUT" <<'EOF'
import sys, numpy as np
a, b = (np.fromfile(f"{sys.argv[1]}/{n}.f32", dtype="<f4") for n in ("ours", "theirs"))
a, b = a.reshape(5, -1), b.reshape(5, -1)
print(f"-- logits, every position: max |ours - llama.cpp| = {np.abs(a - b).max():.4f} "
      f"(largest logit {np.abs(b).max():.2f}); argmax equal at {int((a.argmax(1) == b.argmax(1)).sum())}/5 positions; "
      f"top-5 sets equal at {sum(set(np.argsort(-x)[:5]) == set(np.argsort(-y)[:5]) for x, y in zip(a, b))}/5")
EOF
echo "-- greedy continuation, 24 tokens: ours; llama.cpp; llama.cpp with an f32 KV cache and no flash attention"
$GLLMK generate -m "$MODEL" -p "The capital of France is" -n 24 2>/dev/null | $PY -c 'import sys; print(repr(sys.stdin.read()[len("The capital of France is"):-1]))'
$PY $PEER greedy "$MODEL" $IDS 24 | tail -1
PEER_F32_KV=1 $PY $PEER greedy "$MODEL" $IDS 24 | tail -1
echo "-- speed (alternating, twice each)"
for i in 1 2; do
  $GLLMK bench --op model --no-peer --model "$MODEL" | grep -E "upload|prefill 512|decode\+sample" | sed 's/^/ours      /'
  GLLM_TILED=1 $GLLMK bench --op model --no-peer --model "$MODEL" | grep -E "upload|prefill 512|decode\+sample" | sed 's/^/ours tiled /'
  $PY $PEER model "$MODEL"
  $PY $PEER batch "$MODEL" 1,4,8,16,32,64
done

echo; echo "== 3. all-MiniLM-L6-v2, as GGUF (f32) through llama.cpp's writer"
GGUF=$OUT/all-MiniLM-L6-v2.f32.gguf
[ -f $GGUF ] || $PY bench/peers/bert_to_gguf.py models/all-MiniLM-L6-v2 $GGUF f32
S1=101,1037,2158,2003,5983,2833,1012,102            # a man is eating food .
S2=101,1037,2158,2003,5983,1037,3538,1997,7852,1012,102  # a man is eating a piece of bread .
S3=101,1996,4937,2003,2006,1996,2795,1012,102       # the cat is on the table .
$GLLMK embed -m $GGUF --tokens $S1 --tokens $S2 --tokens $S3 --out $OUT/emb_ours.f32 >/dev/null
$PY $PEER embed $GGUF $S1 $S2 $S3 > $OUT/emb_theirs.txt
$PY - "$OUT" <<'EOF'
import sys, numpy as np
b = np.loadtxt(f"{sys.argv[1]}/emb_theirs.txt")
a = np.fromfile(f"{sys.argv[1]}/emb_ours.f32", dtype="<f4").reshape(b.shape)
print(f"-- 3 sentences: max |ours - llama.cpp| = {np.abs(a - b).max():.2e}; cosines (1,2) (1,3): "
      f"ours {a[0] @ a[1]:.4f} {a[0] @ a[2]:.4f}, llama.cpp {b[0] @ b[1]:.4f} {b[0] @ b[2]:.4f}")
EOF
echo "-- throughput (alternating, twice each)"
for i in 1 2; do
  $GLLMK bench --op embed --no-peer --embed-model $GGUF | grep -E "32 sentences|GEMMs alone" | sed 's/^/ours      /'
  $PY $PEER embed $GGUF
done
