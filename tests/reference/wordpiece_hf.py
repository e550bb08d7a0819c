"""Reference WordPiece tokenisations from Hugging Face's tokenizers (the Rust BertWordPieceTokenizer
that sentence-transformers models use), for tests/test_tokenizer.c: seeded random texts of
words, accented and cased letters, Hangul, CJK, symbols that decompose to punctuation, private-use
and format characters, and BERT's special tokens (which Hugging Face reads as such).

Writes tests/data/tokenizers/wordpiece-hf.inp (texts separated by __ggml_vocab_test__ lines) and
ggml-vocab-bert-bge.gguf.hf.out (one line of ids per text; that vocabulary is bert-base-uncased's).
Usage: .peers/bin/python tests/reference/wordpiece_hf.py models/all-MiniLM-L6-v2/vocab.txt
(pip install tokenizers into bench/peers/setup.sh's venv)"""
import os
import random
import sys

import tokenizers

vocab = sys.argv[1]
hf = tokenizers.BertWordPieceTokenizer(vocab, lowercase=True)
random.seed(20261128)
specials = ["[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]"]
pieces = ["hello", "world", " ", "  ", "\n", "\t", "123", "4567890", "'s", "don't", "HTTP", "café", "naïve", "日本語",
          "中文", "한국어", "뵤", "😀", "🤖👍", "ü", "Ω", "—", "...", "!?", "#", "$", "x_y", "a.b", "\r\n", "ﬁ", "İ", "ß",
          "Straße", "१२३", "٣٤", "\u00a0", "\u200b", "e\u0301", "ǅ", "ﬀ", "Ⅻ", "①", "Å", "ǈ", "ŉ", "Ǆ", "\ufffd", "\u00ad",
          "™", "½", "²", "µ", "ÿ", "Ÿ", "ΐ", "ﬃ", "ᾈ", "≠", "≮", "\u1fef", "\ue000", "\U000f0527", "\u2581", "ொ", "ऩ"]
texts = ["".join(random.choice(specials) if random.random() < 0.15 else random.choice(pieces)
                 for _ in range(random.randint(1, 8))) for _ in range(400)]
data = os.path.join(os.path.dirname(__file__), "..", "data", "tokenizers")
with open(os.path.join(data, "wordpiece-hf.inp"), "w", encoding="utf-8", newline="") as f:
    f.write("\n__ggml_vocab_test__\n".join(texts))
with open(os.path.join(data, "ggml-vocab-bert-bge.gguf.hf.out"), "w", encoding="utf-8") as f:
    for t in texts:
        f.write("".join(f" {i}" for i in hf.encode(t, add_special_tokens=False).ids) + "\n")
print(f"{len(texts)} texts, tokenizers {tokenizers.__version__}")
