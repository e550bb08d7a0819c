/* A stand-in for Criterion in the ThreadSanitizer build (GLLM_TSAN). Criterion cannot run
 * under ThreadSanitizer: its inheritable arena maps memory where TSan keeps its shadow
 * (Criterion issue #274). So the CUDA suites, whose emulated kernels the race check watches,
 * and the L3 suite (threads sharing a generator, an embedder) build against this header: the
 * part of Criterion's API they use, each test run in a child process by runner.c. The binaries
 * for a GPU machine use it too (GLLM_STANDIN_RUNNER; the CUDA suites and the CPU kernels', for
 * the ISAs of the GPU machine's host): it needs no shared library there. */
#ifndef GLLM_TSAN_CRITERION_H
#define GLLM_TSAN_CRITERION_H
#include <math.h>
#include <stdio.h>
#include <string.h>

struct cr_test {
    const char *suite, *name;
    void (*run)(void);
};
struct cr_suite {
    const char *name;
    void (*init)(void), (*fini)(void);
};
void cr_register_test(const struct cr_test *t);
void cr_register_suite(const struct cr_suite *s);
/* ends the running test: failed at file:line (what, then the caller's message after the
 * format's first character, a space), or skipped */
void cr_fail(const char *file, int line, const char *what, const char *fmt, ...) __attribute__((noreturn, format(printf, 4, 5)));
void cr_skip(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

#define Test(suite, name)                                                                  \
    static void suite##_##name(void);                                                      \
    __attribute__((constructor)) static void suite##_##name##_register(void) {             \
        static const struct cr_test t = {#suite, #name, suite##_##name};                   \
        cr_register_test(&t);                                                              \
    }                                                                                      \
    static void suite##_##name(void)
#define TestSuite(suite, ...)                                                              \
    __attribute__((constructor)) static void suite##_suite_register(void) {                \
        static const struct cr_suite s = {.name = #suite, __VA_ARGS__};                    \
        cr_register_suite(&s);                                                             \
    }

#define cr_assert(cond, ...)                                                               \
    do {                                                                                   \
        if (!(cond)) cr_fail(__FILE__, __LINE__, #cond, " " __VA_ARGS__);                   \
    } while (0)
#define cr_assert_eq(a, b, ...) cr_assert((a) == (b), __VA_ARGS__)
#define cr_assert_neq(a, b, ...) cr_assert((a) != (b), __VA_ARGS__)
#define cr_assert_float_eq(a, b, eps, ...) cr_assert(fabs((double)(a) - (double)(b)) <= (eps), __VA_ARGS__)
#define cr_assert_null(p, ...) cr_assert((p) == NULL, __VA_ARGS__)
#define cr_assert_not_null(p, ...) cr_assert((p) != NULL, __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) cr_assert(!strcmp((a), (b)), __VA_ARGS__)
#define cr_assert_arr_eq(a, b, size, ...) cr_assert(!memcmp((a), (b), (size)), __VA_ARGS__)
#define cr_log_info(...) (fprintf(stderr, "[----] " __VA_ARGS__), fputc('\n', stderr))
#define cr_skip_test(...) cr_skip("" __VA_ARGS__)
#endif
