"""Independent check of the embedding path: a BERT forward in numpy (float64) straight
from model.safetensors, against the vectors `gllmk embed --out` writes.
usage: python3 tests/reference/minilm_numpy.py build/gllmk models/all-MiniLM-L6-v2"""
import json
import struct
import subprocess
import sys
import tempfile

import numpy as np

gllmk, model = sys.argv[1], sys.argv[2]
cfg = json.load(open(model + "/config.json"))
raw = open(model + "/model.safetensors", "rb").read()
hlen = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8 : 8 + hlen])
body = raw[8 + hlen :]


def t(name):
    h = header[name]
    a, b = h["data_offsets"]
    return np.frombuffer(body[a:b], dtype=np.float32).reshape(h["shape"]).astype(np.float64)


def layernorm(x, w, b, eps):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * w + b


def gelu(x):
    from math import erf, sqrt
    return 0.5 * x * (1 + np.vectorize(erf)(x / sqrt(2)))


def embed(ids):
    eps, H, nh = cfg["layer_norm_eps"], cfg["hidden_size"], cfg["num_attention_heads"]
    hd, n = H // nh, len(ids)
    x = t("embeddings.word_embeddings.weight")[ids] + t("embeddings.position_embeddings.weight")[:n]
    x = x + t("embeddings.token_type_embeddings.weight")[0]
    x = layernorm(x, t("embeddings.LayerNorm.weight"), t("embeddings.LayerNorm.bias"), eps)
    for l in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{l}."
        q = x @ t(p + "attention.self.query.weight").T + t(p + "attention.self.query.bias")
        k = x @ t(p + "attention.self.key.weight").T + t(p + "attention.self.key.bias")
        v = x @ t(p + "attention.self.value.weight").T + t(p + "attention.self.value.bias")
        out = np.zeros_like(q)
        for h in range(nh):
            s = slice(h * hd, (h + 1) * hd)
            sc = q[:, s] @ k[:, s].T / np.sqrt(hd)
            sc = np.exp(sc - sc.max(-1, keepdims=True))
            out[:, s] = (sc / sc.sum(-1, keepdims=True)) @ v[:, s]
        a = out @ t(p + "attention.output.dense.weight").T + t(p + "attention.output.dense.bias")
        x = layernorm(x + a, t(p + "attention.output.LayerNorm.weight"), t(p + "attention.output.LayerNorm.bias"), eps)
        f = gelu(x @ t(p + "intermediate.dense.weight").T + t(p + "intermediate.dense.bias"))
        d = f @ t(p + "output.dense.weight").T + t(p + "output.dense.bias")
        x = layernorm(x + d, t(p + "output.LayerNorm.weight"), t(p + "output.LayerNorm.bias"), eps)
    e = x.mean(0)
    return e / np.linalg.norm(e)


seqs = [[101, 1037, 2158, 2003, 5983, 2833, 1012, 102],        # a man is eating food .
        [101, 1996, 2047, 3185, 2003, 12476, 1012, 102],       # the new movie is awesome .
        [101, 2129, 2079, 1045, 6524, 2061, 21723, 7852, 102]]  # how do i bake so ##urdough bread
with tempfile.NamedTemporaryFile(suffix=".f32") as out:
    args = [gllmk, "embed", "-m", model, "--out", out.name]
    for s in seqs:
        args += ["--tokens", ",".join(map(str, s))]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    ours = np.fromfile(out.name, dtype=np.float32).reshape(len(seqs), -1)
worst = 0.0
for i, s in enumerate(seqs):
    ref = embed(s)
    worst = max(worst, float(np.abs(ours[i] - ref).max()))
    cos = float(ours[i] @ ref / np.linalg.norm(ours[i]))
    print(f"sequence {i}: cosine(ours, numpy) = {cos:.7f}, max |diff| = {np.abs(ours[i] - ref).max():.2e}")
ok = worst < 1e-4
print(f"{len(seqs) if ok else 0} passed, {0 if ok else len(seqs)} failed")
sys.exit(0 if ok else 1)
