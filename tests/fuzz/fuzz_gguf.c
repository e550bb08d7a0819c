/* libFuzzer harness for the GGUF reader and the tokenizer it loads (scripts/fuzz.sh builds and runs it). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "format/gguf.h"
#include "text/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy = malloc(size ? size : 1); /* exactly size bytes: any over-read is caught */
    memcpy(copy, data, size);
    gllm_gguf g;
    if (gllm_gguf_parse(copy, size, &g) == GLLM_OK) {
        for (size_t i = 0; i < g.n_kv; i++)
            if (g.kv[i].type == GGUF_ARRAY && g.kv[i].arr_type == GGUF_STRING && g.kv[i].arr_n < 100000) {
                gllm_str *s = malloc(g.kv[i].arr_n * sizeof *s + 1);
                gllm_gguf_arr_strs(&g, &g.kv[i], s);
                free(s);
            }
        gllm_tokenizer *t;
        if (gllm_tokenizer_load(&g, &t) == GLLM_OK) { /* a text with special tokens, both ways, and back */
            static const char text[] = "Hi <s>x</s> 12 <|im_end|><unk>[SEP] \xe4\xb8\x96";
            int32_t ids[256];
            char back[4096];
            size_t n, len;
            for (int special = 0; special < 2; special++)
                if (gllm_tokenize(t, text, sizeof text - 1, special, ids, 256, &n) == GLLM_OK)
                    gllm_detokenize(t, ids, n, back, sizeof back, &len);
            gllm_tokenizer_free(t);
        }
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < g.n_tensors; i++)
            if (g.tensors[i].nbytes) sink ^= ((const uint8_t *)g.tensors[i].data)[g.tensors[i].nbytes - 1];
        (void)sink;
        gllm_gguf_close(&g);
    }
    free(copy);
    return 0;
}
