/* libFuzzer harness for the GGUF reader (scripts/fuzz.sh builds and runs it). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "format/gguf.h"

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
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < g.n_tensors; i++)
            if (g.tensors[i].nbytes) sink ^= ((const uint8_t *)g.tensors[i].data)[g.tensors[i].nbytes - 1];
        (void)sink;
        gllm_gguf_close(&g);
    }
    free(copy);
    return 0;
}
