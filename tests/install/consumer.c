/* A program outside the project, built against the installed package. */
#include <gllm_kernels.h>
#include <math.h>
#include <stdio.h>

int main(void) {
    if (gllm_init() != GLLM_OK) return fprintf(stderr, "%s\n", gllm_last_error()), 1;
    float w[2 * 32], x[32], y[2];
    for (int i = 0; i < 64; i++) w[i] = i < 32 ? 1.0f : -0.5f;
    for (int i = 0; i < 32; i++) x[i] = 1.0f;
    if (gllm_matmul(GLLM_DTYPE_F32, w, x, NULL, y, 1, 2, 32) != GLLM_OK) return 1;
    printf("consumer: isa %s, y = %g %g\n", gllm_isa_name(), y[0], y[1]);
    return fabsf(y[0] - 32.0f) > 1e-6f || fabsf(y[1] + 16.0f) > 1e-6f;
}
