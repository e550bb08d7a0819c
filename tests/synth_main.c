/* gllm_synth_model OUT.gguf [dtype [VOCAB]]: a random-weights model of SmolLM2-135M's shape (30
 * layers, dim 576, 9 heads on 3 KV heads, FFN 1536, vocabulary 49152, tied output), for
 * benchmarks where the real file is absent (the GPU machine); with VOCAB, the tests' small
 * shape with that vocabulary (gllmk's checks). Default dtype q4_1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "synth_model.h"

int main(int argc, char **argv) {
    if (argc < 2) return fprintf(stderr, "usage: gllm_synth_model OUT.gguf [dtype [VOCAB]]\n"), 2;
    gllm_dtype t = GLLM_DTYPE_Q4_1;
    for (int i = 0; argc > 2 && i < GLLM_DTYPE_COUNT; i++)
        if (!strcmp(argv[2], gllm_dtype_name((gllm_dtype)i))) t = (gllm_dtype)i;
    if (argc > 3) VOCAB = (size_t)atoi(argv[3]);
    else DIM = 576, NH = 9, NKV = 3, HD = 64, FFN = 1536, VOCAB = 49152, LAYERS = 30, CTX = 8192, BASE = 100000.0;
    model_file f;
    build(&f, "llama", t);
    if (save(&f, argv[1])) return fprintf(stderr, "gllm_synth_model: cannot write %s\n", argv[1]), 1;
    printf("%s: %s, %zu bytes\n", argv[1], gllm_dtype_name(t), f.len);
    return 0;
}
