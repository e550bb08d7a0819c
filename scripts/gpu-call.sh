#!/usr/bin/env bash
# One call of a GPU session, after scripts/gpu-pack.sh --models here. The first call runs
# scripts/gpu-check.sh at once without the real models (their tests skip); the model parts
# that later calls carry are kept in /tmp/gllm-parts (a warm device keeps them between calls),
# and once all have arrived the check runs again, the real-model tests included; until then
# the call says which are here. The tracked tree (~28 MiB) travels with every call, so:
#   1) carry [".gpu/pack.tar.xz"]                        -> the check
#   2) carry [".gpu/models.part00", ".gpu/models.sum"]
#   3) carry [".gpu/models.part01"]
#   4) carry [".gpu/models.part02"]                      -> the check with the models
# each: bash scripts/gpu-call.sh (a check: ~60 s on an H200; prints its summary's failures and figures)
cd "$(dirname "$0")/.."
mkdir -p /tmp/gllm-parts .gpu
cp .gpu/models.* .gpu/pack.tar.xz /tmp/gllm-parts/ 2>/dev/null
cp -n /tmp/gllm-parts/* .gpu/ 2>/dev/null
if [ -r .gpu/models.sum ] && ! (cd .gpu && sha256sum --quiet -c models.sum > /dev/null 2>&1); then
  echo "parts here: $(ls /tmp/gllm-parts | tr '\n' ' ')"
  exit 0
fi
timeout 500 bash scripts/gpu-check.sh > /dev/null 2>&1
grep -v '^\[PASS\]\|^\[----\]' "$OUT/gpu-check.txt" | tail -c 9000
