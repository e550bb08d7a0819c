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
$CC $common tests/fuzz/fuzz_gguf.c src/format/gguf.c generated/dtype_traits.c src/core/error.c -o "$out/fuzz_gguf"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp tests/fuzz/corpus/gguf/* "$work/"
"$out/fuzz_gguf" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 "$work" 2>&1 | tail -n 4
echo "fuzz: fuzz_gguf ran ${secs}s without a finding"
