#!/usr/bin/env bash
# AOT: generated/cuda/kernels.cu -> cubin/kernels_sm{80,86,89,90}.cubin (SASS only, no PTX)
# plus cubin/MANIFEST (source hash, nvcc version, flags). The cubins are committed and
# embedded into the library: users need no CUDA toolkit.
#   scripts/compile_kernels.sh          rebuild cubin/
#   scripts/compile_kernels.sh --check  fail if cubin/ is stale (CI, when nvcc is present)
set -euo pipefail
cd "$(dirname "$0")/.."
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
flags="-cubin -O3 -std=c++17 -Xptxas=-O3"
out=cubin
if [ "${1:-}" = "--check" ]; then out=$(mktemp -d); trap 'rm -rf "$out"' EXIT; fi
mkdir -p "$out"
for sm in 80 86 89 90; do
  "$NVCC" $flags -gencode arch=compute_$sm,code=sm_$sm -Igenerated -Igenerated/include -Isrc -Iinclude \
    -o "$out/kernels_sm$sm.cubin" generated/cuda/kernels.cu
done
{
  echo "# AOT cubins: scripts/compile_kernels.sh"
  echo "source $(cat generated/cuda/*.cu src/cuda/kernels/* generated/quant_blocks.h | sha256sum | cut -c1-16)"
  echo "nvcc $("$NVCC" --version | tail -n 1)"
  echo "flags $flags -gencode arch=compute_XX,code=sm_XX (XX = 80 86 89 90)"
  for sm in 80 86 89 90; do echo "sm_$sm $(sha256sum < "$out/kernels_sm$sm.cubin" | cut -c1-16) $(stat -c %s "$out/kernels_sm$sm.cubin")"; done
} > "$out/MANIFEST"
if [ "${1:-}" = "--check" ] && ! grep -qxF "$(grep '^nvcc ' "$out/MANIFEST")" cubin/MANIFEST; then
  # another toolkit builds other bytes: the sources must still be the committed ones
  grep -qxF "$(grep '^source ' "$out/MANIFEST")" cubin/MANIFEST || { echo "cubin/ is stale (sources changed): run scripts/compile_kernels.sh"; exit 1; }
  echo "kernels compile for sm_80/86/89/90; cubin/ sources match (bytes not compared: $(grep '^nvcc ' cubin/MANIFEST) built them)"
elif [ "${1:-}" = "--check" ]; then
  if ! diff -q "$out/MANIFEST" cubin/MANIFEST >/dev/null; then
    diff "$out/MANIFEST" cubin/MANIFEST || true
    echo "cubin/ is stale: run scripts/compile_kernels.sh"; exit 1
  fi
  for sm in 80 86 89 90; do cmp -s "$out/kernels_sm$sm.cubin" cubin/kernels_sm$sm.cubin || { echo "cubin/kernels_sm$sm.cubin is stale"; exit 1; }; done
  echo "cubin/ matches the kernels (nvcc $("$NVCC" --version | tail -n 1 | cut -c1-40))"
fi
