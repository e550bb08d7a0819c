"""The encoder on a synthetic cross-encoder (no trained one ships as a package): writes a
small random BERT with pooler and classifier as a Hugging Face directory and as GGUF, scores
token-id pairs with `gllmk rerank --tokens`, embeds token ids with `gllmk embed --tokens` under
each pooling a model can name (sentence-transformers' 1_Pooling/config.json, GGUF
bert.pooling_type), and compares both with the numpy forward (bert_numpy.py).
usage: python3 tests/reference/encoder_numpy.py build/gllmk"""
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

    # the same model as GGUF (llama.cpp's bert names), f32 and f16 matrices: the same scores
    def gguf(path, f16, pooling=None, squeeze=False, special_ids=True, one_type=False):
        def s(x):
            b = x.encode()
            return struct.pack("<Q", len(b)) + b
        kv = [("general.architecture", 8, s("bert")), ("bert.block_count", 4, struct.pack("<I", L)),
              ("bert.embedding_length", 4, struct.pack("<I", H)), ("bert.attention.head_count", 4, struct.pack("<I", NH)),
              ("bert.feed_forward_length", 4, struct.pack("<I", FF)), ("bert.context_length", 4, struct.pack("<I", P)),
              ("bert.attention.layer_norm_epsilon", 6, struct.pack("<f", 1e-12)), ("tokenizer.ggml.model", 8, s("bert")),
              ("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, V) + b"".join(
                  s(w if w.startswith("[") else "\u2581" + w) for w in words)),
              ("tokenizer.ggml.unknown_token_id", 4, struct.pack("<I", 1)),
              ("tokenizer.ggml.cls_token_id", 4, struct.pack("<I", 2)),
              ("tokenizer.ggml.seperator_token_id", 4, struct.pack("<I", 3))][:None if special_ids else -3]
        if pooling is not None:
            kv.append(("bert.pooling_type", 4, struct.pack("<I", pooling)))
        names = {"embeddings.word_embeddings.weight": "token_embd.weight",
                 "embeddings.position_embeddings.weight": "position_embd.weight",
                 "embeddings.token_type_embeddings.weight": "token_types.weight",
                 "embeddings.LayerNorm.weight": "token_embd_norm.weight", "embeddings.LayerNorm.bias": "token_embd_norm.bias",
                 "pooler.dense.weight": "cls.weight", "pooler.dense.bias": "cls.bias",
                 "classifier.weight": "cls.output.weight", "classifier.bias": "cls.output.bias"}
        per = {"attention.self.query": "attn_q", "attention.self.key": "attn_k", "attention.self.value": "attn_v",
               "attention.output.dense": "attn_output", "attention.output.LayerNorm": "attn_output_norm",
               "intermediate.dense": "ffn_up", "output.dense": "ffn_down", "output.LayerNorm": "layer_output_norm"}
        for l in range(L):
            for hf, gg in per.items():
                for suffix in ("weight", "bias"):
                    names[f"encoder.layer.{l}.{hf}.{suffix}"] = f"blk.{l}.{gg}.{suffix}"
        infos, blob = b"", b""
        for hf, a in tensors.items():
            if one_type and hf == "embeddings.token_type_embeddings.weight":
                a = a[:1]  # a model of one token type: [1, H], which llama.cpp's writer stores 1-D
            mat = a.ndim == 2 and hf not in ("embeddings.position_embeddings.weight", "embeddings.token_type_embeddings.weight")
            half = f16 and mat and not hf.startswith("classifier") and not hf.startswith("pooler")
            data = a.astype(np.float16 if half else np.float32).tobytes()
            dims = list(reversed(a.shape))
            while squeeze and len(dims) > 1 and dims[-1] == 1:  # llama.cpp's writer: ggml_n_dims drops trailing 1s
                dims.pop()
            infos += s(names[hf]) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", x) for x in dims)
            infos += struct.pack("<IQ", 1 if half else 0, len(blob))
            blob += data + b"\0" * (-len(data) % 32)
        head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv))
        head += b"".join(s(k) + struct.pack("<I", t) + v for k, t, v in kv) + infos
        head += b"\0" * (-len(head) % 32)
        open(path, "wb").write(head + blob)

    for f16, squeeze, special_ids in ((0, False, True), (1, False, True), (0, True, True), (0, False, False)):
        path = os.path.join(d, f"model{f16}{squeeze}{special_ids}.gguf")
        gguf(path, f16, squeeze=squeeze, special_ids=special_ids)
        args = [gllmk, "rerank", "-m", path] + sum((["--tokens", ",".join(map(str, p))] for p in pairs), [])
        out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
        got = {int(l.split()[1].strip("[]")): float(l.split()[0]) for l in out.strip().splitlines()}
        for i, p in enumerate(pairs):
            tol = 5e-3 if f16 else 1e-4
            print(f"pair {i} from GGUF ({'f16' if f16 else 'f32'} matrices{', the classifier 1-D' if squeeze else ''}"
                  f"{', no [UNK]/[CLS]/[SEP] ids: found by text' if not special_ids else ''}): {got[i]:+.6f}")
            worst = max(worst, abs(got[i] - ref.score(p, 3)) / (tol / 1e-4))

    # embeddings under each pooling: the directory with a 1_Pooling/config.json, and GGUF with
    # bert.pooling_type (llama.cpp's numbers: 1 mean, 2 cls, 3 last); without either, mean
    def embed(model):
        with tempfile.NamedTemporaryFile(suffix=".f32") as out:
            args = [gllmk, "embed", "-m", model, "--out", out.name] + sum((["--tokens", ",".join(map(str, p))] for p in pairs), [])
            subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
            return np.fromfile(out.name, dtype=np.float32).reshape(len(pairs), -1)

    def check_embed(model, pooling, what):
        global worst
        got = embed(model)
        err = max(float(np.abs(got[i] - ref.embed(p, pooling)).max()) for i, p in enumerate(pairs))
        print(f"embeddings, {what}: max |diff| from numpy's {pooling} pooling {err:.2e}")
        worst = max(worst, err)

    check_embed(d, "mean", "no pooling config")
    # a text past sentence-transformers' max_seq_length: its end cut ([CLS], 4 words, [SEP]); the
    # tokenizer's model_max_length counts only where max_seq_length is not given
    json.dump({"max_seq_length": 6, "do_lower_case": False}, open(os.path.join(d, "sentence_bert_config.json"), "w"))
    json.dump({"model_max_length": 4}, open(os.path.join(d, "tokenizer_config.json"), "w"))
    with tempfile.NamedTemporaryFile(suffix=".f32") as out:
        subprocess.run([gllmk, "embed", "-m", d, "--out", out.name, "w3 w1 w4 w1 w5 w9 w2"], check=True, stdout=subprocess.DEVNULL)
        err = float(np.abs(np.fromfile(out.name, dtype=np.float32) - ref.embed([2, 8, 6, 9, 6, 3], "mean")).max())
    print(f"embeddings, a text cut at max_seq_length 6: max |diff| from numpy's {err:.2e}")
    worst = max(worst, err)
    # a pair is cut at the tokenizer's model_max_length (CrossEncoder's rule), longest_first: 1 id
    # of room for "w3 w1" and "w4" keeps one query word ([CLS] w3 [SEP] [SEP])
    r = subprocess.run([gllmk, "rerank", "-m", d, "-q", "w3 w1", "w4"], check=True, capture_output=True, text=True).stdout
    err = abs(float(r.split()[0]) - ref.score([2, 8, 3, 3], 3))
    print(f"rerank, a pair cut at model_max_length 4: |diff| from numpy's {err:.2e}")
    worst = max(worst, err)
    os.remove(os.path.join(d, "sentence_bert_config.json"))
    with tempfile.NamedTemporaryFile(suffix=".f32") as out:  # without it, model_max_length: [CLS], 2 words, [SEP]
        subprocess.run([gllmk, "embed", "-m", d, "--out", out.name, "w3 w1 w4 w1 w5 w9 w2"], check=True, stdout=subprocess.DEVNULL)
        err = float(np.abs(np.fromfile(out.name, dtype=np.float32) - ref.embed([2, 8, 6, 3], "mean")).max())
    print(f"embeddings, a text cut at model_max_length 4: max |diff| from numpy's {err:.2e}")
    worst = max(worst, err)
    os.remove(os.path.join(d, "tokenizer_config.json"))
    os.mkdir(os.path.join(d, "1_Pooling"))
    for mode, pooling in (("cls_token", "cls"), ("mean_tokens", "mean"), ("lasttoken", "last")):
        json.dump({"word_embedding_dimension": H, "pooling_mode_cls_token": mode == "cls_token",
                   "pooling_mode_mean_tokens": mode == "mean_tokens", "pooling_mode_max_tokens": False,
                   "pooling_mode_lasttoken": mode == "lasttoken"}, open(os.path.join(d, "1_Pooling", "config.json"), "w"))
        check_embed(d, pooling, f"1_Pooling {mode}")
    json.dump({"pooling_mode_max_tokens": True}, open(os.path.join(d, "1_Pooling", "config.json"), "w"))
    r = subprocess.run([gllmk, "embed", "-m", d, "--tokens", "2,7,3"], capture_output=True, text=True)
    print(f"embeddings, 1_Pooling max_tokens: exit {r.returncode}, {r.stderr.strip()}")
    if r.returncode == 0 or "pooling" not in r.stderr or "Sanitizer" in r.stderr:
        worst = 1.0
    for number, pooling in ((1, "mean"), (2, "cls"), (3, "last")):
        path = os.path.join(d, f"pool{number}.gguf")
        gguf(path, 0, number)
        check_embed(path, pooling, f"GGUF bert.pooling_type {number}")
    path = os.path.join(d, "one_type.gguf")  # embeddings take type 0 only: the same vectors
    gguf(path, 0, 1, squeeze=True, one_type=True)
    check_embed(path, "mean", "GGUF with one token type, its table stored 1-D")

    # configurations that must be refused with a message, not a crash or a silently other model
    cfg = json.load(open(os.path.join(d, "config.json")))
    for key, value, want in (("num_attention_heads", 0.5, "num_attention_heads"), ("num_hidden_layers", 1.5, "num_hidden_layers"),
                             ("position_embedding_type", "relative_key", "position_embedding_type")):
        json.dump({**cfg, key: value}, open(os.path.join(d, "config.json"), "w"))
        r = subprocess.run([gllmk, "embed", "-m", d, "--tokens", "2,7,3"], capture_output=True, text=True)
        print(f"config {key} = {value}: exit {r.returncode}, {r.stderr.strip()}")
        if r.returncode != 1 or want not in r.stderr or "Sanitizer" in r.stderr:
            worst = 1.0
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    # a sentence-transformers module we do not run, a tokenizer normaliser we do not have: refused
    os.remove(os.path.join(d, "1_Pooling", "config.json"))  # (its max_tokens mode would be refused first)
    extra = {"modules.json": [{"idx": 0, "type": "sentence_transformers.models.Transformer"},
                              {"idx": 1, "type": "sentence_transformers.models.Pooling"},
                              {"idx": 2, "type": "sentence_transformers.models.Dense"}],
             "tokenizer_config.json": {"do_lower_case": True, "strip_accents": False}}
    for name, content in extra.items():
        json.dump(content, open(os.path.join(d, name), "w"))
        r = subprocess.run([gllmk, "embed", "-m", d, "--tokens", "2,7,3"], capture_output=True, text=True)
        print(f"{name} {json.dumps(content)[-60:]}: exit {r.returncode}, {r.stderr.strip()[-90:]}")
        if r.returncode != 1 or name not in r.stderr or "Sanitizer" in r.stderr:
            worst = 1.0
        os.remove(os.path.join(d, name))
    # token lists that are not 32-bit ids, and more texts than a call takes: usage errors (exit 2)
    for args in (["--tokens", "2,4294967303,3"], ["--tokens", "2,7x"], ["--tokens", ""], ["--tokens", "2,,3"], ["t"] * 65):
        r = subprocess.run([gllmk, "embed", "-m", os.path.join(d, "pool1.gguf")] + args, capture_output=True, text=True)
        print(f"embed {' '.join(args)[:24]}: exit {r.returncode}, {r.stderr.strip()}")
        if r.returncode != 2 or "gllmk" not in r.stderr or "Sanitizer" in r.stderr:
            worst = 1.0
    deep = os.path.join(d, *["x" * 200] * 5)  # config.json fits in 1024 bytes, 1_Pooling/config.json does not
    os.makedirs(deep)
    for f in ("config.json", "model.safetensors", "vocab.txt"):
        os.symlink(os.path.join(d, f), os.path.join(deep, f))
    r = subprocess.run([gllmk, "embed", "-m", deep, "--tokens", "2,7,3"], capture_output=True, text=True)
    print(f"a {len(deep)}-byte model path: exit {r.returncode}, {r.stderr.strip()[:80]}...")
    if r.returncode != 1 or "too long" not in r.stderr or "Sanitizer" in r.stderr:
        worst = 1.0
ok = worst < 1e-4
print(f"{len(pairs) if ok else 0} passed, {0 if ok else len(pairs)} failed")
sys.exit(0 if ok else 1)
