"""A BERT forward in numpy (float64) straight from a safetensors file: the independent
reference of the library's encoder (embeddings and cross-encoder scores)."""
import json
import math
import struct

import numpy as np


class Bert:
    def __init__(self, model_dir):
        self.cfg = json.load(open(model_dir + "/config.json"))
        raw = open(model_dir + "/model.safetensors", "rb").read()
        n = struct.unpack("<Q", raw[:8])[0]
        self.header, self.body = json.loads(raw[8 : 8 + n]), raw[8 + n :]

    def t(self, name):
        h = self.header[name]
        a, b = h["data_offsets"]
        return np.frombuffer(self.body[a:b], dtype=np.float32).reshape(h["shape"]).astype(np.float64)

    @staticmethod
    def layernorm(x, w, b, eps):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) / np.sqrt(v + eps) * w + b

    def hidden(self, ids, types):
        c, t = self.cfg, self.t
        eps, H, nh = c["layer_norm_eps"], c["hidden_size"], c["num_attention_heads"]
        hd, n = H // nh, len(ids)
        x = t("embeddings.word_embeddings.weight")[ids] + t("embeddings.position_embeddings.weight")[:n]
        x = x + t("embeddings.token_type_embeddings.weight")[types]
        x = self.layernorm(x, t("embeddings.LayerNorm.weight"), t("embeddings.LayerNorm.bias"), eps)
        erf = np.vectorize(math.erf)
        for l in range(c["num_hidden_layers"]):
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
            x = self.layernorm(x + a, t(p + "attention.output.LayerNorm.weight"), t(p + "attention.output.LayerNorm.bias"), eps)
            f = x @ t(p + "intermediate.dense.weight").T + t(p + "intermediate.dense.bias")
            f = 0.5 * f * (1 + erf(f / math.sqrt(2)))
            d = f @ t(p + "output.dense.weight").T + t(p + "output.dense.bias")
            x = self.layernorm(x + d, t(p + "output.LayerNorm.weight"), t(p + "output.LayerNorm.bias"), eps)
        return x

    def embed(self, ids, pooling="mean"):
        h = self.hidden(ids, [0] * len(ids))
        e = {"mean": h.mean(0), "cls": h[0], "last": h[-1]}[pooling]
        return e / np.linalg.norm(e)

    def score(self, ids, sep):
        first = ids.index(sep)
        types = [0 if i <= first else 1 for i in range(len(ids))]
        cls = self.hidden(ids, types)[0]
        pooled = np.tanh(cls @ self.t("pooler.dense.weight").T + self.t("pooler.dense.bias"))
        return float((pooled @ self.t("classifier.weight").T + self.t("classifier.bias"))[0])
