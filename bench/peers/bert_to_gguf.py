"""Write a Hugging Face BERT directory (config.json, model.safetensors, vocab.txt) as a GGUF file
the way llama.cpp expects it: llama.cpp's own writer (the PyPI package gguf) and its tensor-name
map, llama.cpp's vocabulary convention (word pieces as "\u2581word", continuations without "##"),
mean pooling. Both llama.cpp and gllm-kernels then read the same file.

    .peers/bin/python bench/peers/bert_to_gguf.py models/all-MiniLM-L6-v2 out.gguf [f32|f16]
"""
import json
import struct
import sys
from pathlib import Path

import gguf
import numpy as np

# llama.cpp's names for BERT's special tokens ([CLS] is its "bos", [SEP] both "sep" and "eos")
SPECIAL = {"[PAD]": ("pad",), "[UNK]": ("unk",), "[CLS]": ("bos",), "[SEP]": ("sep", "eos"), "[MASK]": ("mask",)}


def read_safetensors(path):
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        yield name, np.frombuffer(raw[8 + n + a:8 + n + b], dtype=dtypes[t["dtype"]]).reshape(t["shape"])


def main(src, dst, outtype="f32"):
    src = Path(src)
    cfg = json.loads((src / "config.json").read_text())
    n_layers = cfg["num_hidden_layers"]
    w = gguf.GGUFWriter(dst, "bert")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_block_count(n_layers)
    w.add_head_count(cfg["num_attention_heads"])
    w.add_layer_norm_eps(cfg["layer_norm_eps"])
    w.add_causal_attention(False)
    w.add_pooling_type(gguf.PoolingType.MEAN)
    w.add_file_type(gguf.LlamaFileType.ALL_F32 if outtype == "f32" else gguf.LlamaFileType.MOSTLY_F16)

    words = (src / "vocab.txt").read_text(encoding="utf-8").split("\n")
    if words and words[-1] == "":
        words.pop()
    tokens, types = [], []
    for i, t in enumerate(words):
        if t in SPECIAL:
            tokens.append(t), types.append(gguf.TokenType.CONTROL)
            for kind in SPECIAL[t]:
                getattr(w, f"add_{kind}_token_id")(i)
        else:
            tokens.append(t[2:] if t.startswith("##") else "\u2581" + t), types.append(gguf.TokenType.NORMAL)
    w.add_tokenizer_model("bert")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_type_count(cfg.get("type_vocab_size", 2))

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, n_layers)
    for name, data in read_safetensors(src / "model.safetensors"):
        name = name.removeprefix("bert.")
        if name == "embeddings.position_ids" or name.startswith("pooler.") or name.startswith("cls."):
            continue
        new = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if new is None:
            sys.exit(f"bert_to_gguf: no GGUF name for {name}")
        data = data.astype(np.float32)
        if outtype == "f16" and data.ndim == 2 and not new.startswith(("token_types", "position_embd")):
            data = data.astype(np.float16)
        w.add_tensor(new, data)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    main(*sys.argv[1:])
