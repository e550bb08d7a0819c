"""The reranker on a synthetic cross-encoder (no trained one ships as a package): writes a
small random BERT with pooler and classifier as a Hugging Face directory, scores token-id
pairs with `gllmk rerank --tokens`, and compares with the numpy forward (bert_numpy.py).
usage: python3 tests/reference/rerank_numpy.py build/gllmk"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

from bert_numpy import Bert

gllmk = sys.argv[1]
rng = np.random.default_rng(7)
H, L, NH, FF, V, P = 64, 2, 4, 128, 40, 64
words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(V - 5)]
tensors = {}


def add(name, *shape, scale=0.2, offset=0.0):
    tensors[name] = (offset + scale * rng.standard_normal(shape)).astype(np.float32)


add("embeddings.word_embeddings.weight", V, H)
add("embeddings.position_embeddings.weight", P, H)
add("embeddings.token_type_embeddings.weight", 2, H)
add("embeddings.LayerNorm.weight", H, offset=1.0), add("embeddings.LayerNorm.bias", H)
for l in range(L):
    p = f"encoder.layer.{l}."
    for m in ("query", "key", "value"):
        add(p + f"attention.self.{m}.weight", H, H), add(p + f"attention.self.{m}.bias", H)
    add(p + "attention.output.dense.weight", H, H), add(p + "attention.output.dense.bias", H)
    add(p + "attention.output.LayerNorm.weight", H, offset=1.0), add(p + "attention.output.LayerNorm.bias", H)
    add(p + "intermediate.dense.weight", FF, H), add(p + "intermediate.dense.bias", FF)
    add(p + "output.dense.weight", H, FF), add(p + "output.dense.bias", H)
    add(p + "output.LayerNorm.weight", H, offset=1.0), add(p + "output.LayerNorm.bias", H)
add("pooler.dense.weight", H, H), add("pooler.dense.bias", H)
add("classifier.weight", 1, H), add("classifier.bias", 1)

with tempfile.TemporaryDirectory() as d:
    header, blob = {}, b""
    for name, a in tensors.items():
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [len(blob), len(blob) + a.nbytes]}
        blob += a.tobytes()
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    open(os.path.join(d, "model.safetensors"), "wb").write(struct.pack("<Q", len(h)) + h + blob)
    json.dump({"hidden_size": H, "num_hidden_layers": L, "num_attention_heads": NH, "intermediate_size": FF,
               "vocab_size": V, "max_position_embeddings": P, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
               "hidden_act": "gelu", "num_labels": 1}, open(os.path.join(d, "config.json"), "w"))
    open(os.path.join(d, "vocab.txt"), "w").write("\n".join(words) + "\n")
    pairs = [[2, 7, 8, 3, 10, 11, 12, 3], [2, 7, 8, 3, 20, 3], [2, 9, 3, 30, 31, 32, 33, 34, 35, 3]]
    args = [gllmk, "rerank", "-m", d]
    for p in pairs:
        args += ["--tokens", ",".join(map(str, p))]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    ours = {}
    for line in out.strip().splitlines():
        score, idx = line.split()[:2]
        ours[int(idx.strip("[]"))] = float(score)
    ref = Bert(d)
    worst = 0.0
    for i, p in enumerate(pairs):
        want = ref.score(p, 3)
        worst = max(worst, abs(ours[i] - want))
        print(f"pair {i}: ours {ours[i]:+.6f}, numpy {want:+.6f}")
ok = worst < 1e-4
print(f"{len(pairs) if ok else 0} passed, {0 if ok else len(pairs)} failed")
sys.exit(0 if ok else 1)
