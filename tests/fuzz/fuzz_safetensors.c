/* libFuzzer harness for the safetensors reader and its JSON header (scripts/fuzz.sh). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "format/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    gllm_safetensors st;
    if (gllm_st_parse(copy, size, &st) == GLLM_OK) {
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < st.n; i++)
            if (st.t[i].nbytes) sink ^= ((const uint8_t *)st.t[i].data)[st.t[i].nbytes - 1];
        (void)sink;
        gllm_st_close(&st);
    }
    free(copy);
    return 0;
}
