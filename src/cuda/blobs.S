/* The AOT cubins (cubin/, built by scripts/compile_kernels.sh) embedded into the library. */
#define BLOB(sm, file)                          \
    .section .rodata.gllm_cubin_##sm, "a";      \
    .balign 64;                                 \
    .globl gllm_cubin_##sm##_start;             \
    .hidden gllm_cubin_##sm##_start;            \
    gllm_cubin_##sm##_start:;                   \
    .incbin file;                               \
    .globl gllm_cubin_##sm##_end;               \
    .hidden gllm_cubin_##sm##_end;              \
    gllm_cubin_##sm##_end:;

BLOB(sm80, "kernels_sm80.cubin")
BLOB(sm86, "kernels_sm86.cubin")
BLOB(sm89, "kernels_sm89.cubin")
BLOB(sm90, "kernels_sm90.cubin")
.section .note.GNU-stack, "", %progbits
