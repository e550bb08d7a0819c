#!/usr/bin/env bash
# Build the libFuzzer harnesses with clang (ASan + UBSan) and run each for a while:
#   scripts/fuzz.sh [seconds per harness, default 30]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
CC=${FUZZ_CC:-clang}
out=build-fuzz
mkdir -p "$out"
common="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Iinclude -Igenerated/include -Igenerated -Isrc"
$CC $common tests/fuzz/fuzz_gguf.c src/format/gguf.c src/format/mapfile.c generated/dtype_traits.c src/core/error.c \
  src/text/tokenizer.c src/text/unicode.c generated/unicode_tables.c -o "$out/fuzz_gguf"
$CC $common tests/fuzz/fuzz_safetensors.c src/format/safetensors.c src/format/json.c src/format/mapfile.c src/core/error.c -o "$out/fuzz_safetensors"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for h in gguf safetensors; do
  mkdir -p "$work/$h"
  cp tests/fuzz/corpus/$h/* "$work/$h/"
  "$out/fuzz_$h" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 "$work/$h" 2>&1 | tail -n 2
  echo "fuzz: fuzz_$h ran ${secs}s without a finding"
done
