"""Reference tokenisations of texts with special tokens in them, from llama.cpp (through
llama-cpp-python, bench/peers/setup.sh's venv), for tests/test_tokenizer.c.

Writes tests/data/tokenizers/special.inp (the texts, separated by __ggml_vocab_test__ lines)
and, for each vocabulary given, tests/data/tokenizers/NAME.special.out: two lines per text,
its ids with parse_special, then without.
Usage: .peers/bin/python tests/reference/tokenizer_special.py VOCAB.gguf..."""
import os
import sys

import llama_cpp

TEXTS = [
    "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
    "<s>[INST] hi [/INST]</s>",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>",
    "[CLS] what is [MASK]? [SEP] docs [SEP]",
    "<|endoftext|>Hello<|endoftext|><|endoftext|> world",
    "text<unk>more <s> </s>x",
    "[PAD151646]abc [PAD151647] d",
    "  <s>  leading spaces",
    "<|im_start| <<s>> <|im_end|><|im_end|>",
    "no specials at all, just text.",
    "h\u00e9llo<|im_end|>\u4e16\u754c <|endoftext|>",
    "<s>",
    "[SEP][SEP]x[CLS]",
    # letters Unicode 15.0 and 15.1 assigned (CJK Extensions H, I, C's tail; Kawi, Nag Mundari,
    # Cyrillic Extended-D): 's splits off a letter only, so older tables tokenize these otherwise
    "\U00031350's \U0002ebf0's \U0002b739's \U00011f04's \U0001e4d0's \U0001e030's",
]

data = os.path.join(os.path.dirname(__file__), "..", "data", "tokenizers")
with open(os.path.join(data, "special.inp"), "w", encoding="utf-8") as f:
    f.write("\n__ggml_vocab_test__\n".join(TEXTS))
for path in sys.argv[1:]:
    vocab = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
    with open(os.path.join(data, os.path.basename(path) + ".special.out"), "w", encoding="utf-8") as f:
        for text in TEXTS:
            for special in (True, False):
                f.write("".join(f" {i}" for i in vocab.tokenize(text.encode(), add_bos=False, special=special)) + "\n")
