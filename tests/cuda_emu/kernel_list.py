"""The kernels (extern "C" __global__ functions) of the generated CUDA sources, one
GLLM_EMU_KERNEL(name) line each, for the CUDA emulator's registry.
Usage: python3 kernel_list.py OUT SOURCE..."""
import re
import sys

names = []
for path in sys.argv[2:]:
    text = open(path, encoding="utf-8").read()
    names += re.findall(r'extern "C" __global__ void\s+(?:__launch_bounds__\([^)]*\)\s+)?(\w+)\s*\(', text)
out = "".join(f"GLLM_EMU_KERNEL({n})\n" for n in sorted(set(names)))
try:
    same = open(sys.argv[1], encoding="utf-8").read() == out
except OSError:
    same = False
if not same:
    open(sys.argv[1], "w", encoding="utf-8").write(out)
