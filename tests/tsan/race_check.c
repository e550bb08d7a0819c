/* The race check's own test (TSan build only): kernels that the emulator adds for it
 * (libcuda_emu.cpp, gllm_emu_race_*), each run in a child. Without the order it needs, a kernel
 * must be reported: the child ends with ThreadSanitizer's exit status, 66. With it, the child
 * must end cleanly. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include "cuda/runtime.h"

enum { REPORTED = 66 };

/* first (blocks of 64 threads), then second (one block) if given, on a fresh device, in a
 * child whose exit status must be `expect` (its output is shown only when it is not) */
static void run(int expect, const char *first, unsigned blocks, int first_ordered, const char *second, int second_ordered) {
    FILE *log = tmpfile();
    cr_assert(log);
    fflush(NULL);
    const pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        dup2(fileno(log), 2);
        gllm_cuda c;
        CUdeviceptr out;
        if (gllm_cuda_open(&c, 0) != GLLM_OK) _exit(2);
        if (gllm_cuda_enter(&c) != GLLM_OK || gllm_cuda_alloc(&c, 128 * sizeof(float), &out) != GLLM_OK) _exit(3);
        void *a1[] = {&out, &first_ordered}, *a2[] = {&out, &second_ordered};
        if (gllm_cuda_run(&c, first, blocks, 1, 1, 64, 0, a1) != GLLM_OK) _exit(4);
        if (second && gllm_cuda_run(&c, second, 1, 1, 1, 64, 0, a2) != GLLM_OK) _exit(5);
        if (gllm_cuda_sync(&c) != GLLM_OK) _exit(6);
        gllm_cuda_free(&c, out);
        gllm_cuda_leave(&c);
        gllm_cuda_close(&c);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    const int got = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (got != expect) {
        char buf[4096];
        size_t n;
        rewind(log);
        while ((n = fread(buf, 1, sizeof buf, log))) fwrite(buf, 1, n, stderr);
    }
    fclose(log);
    cr_assert_eq(got, expect, "%s%s%s (ordered %d, %d): exit status %d, expected %d", first, second ? " then " : "",
                 second ? second : "", first_ordered, second_ordered, got, expect);
}

Test(race_check, threads_of_a_block_without_a_barrier) {
    run(0, "gllm_emu_race_block", 1, 1, NULL, 0);
    run(REPORTED, "gllm_emu_race_block", 1, 0, NULL, 0); /* shared memory read without __syncthreads */
}

Test(race_check, blocks_writing_one_element) {
    run(0, "gllm_emu_race_grid", 2, 1, NULL, 0);
    run(REPORTED, "gllm_emu_race_grid", 2, 0, NULL, 0); /* two blocks write out[0] */
}

Test(race_check, a_dependent_kernel_reading_before_its_wait) {
    setenv("GLLM_CUDA_DEPENDENT_LAUNCH", "1", 1); /* the second kernel launched as a programmatic dependent */
    run(0, "gllm_emu_race_grid", 2, 1, "gllm_emu_race_dependent", 1);
    run(REPORTED, "gllm_emu_race_grid", 2, 1, "gllm_emu_race_dependent", 0); /* reads before gllm_grid_wait */
}
