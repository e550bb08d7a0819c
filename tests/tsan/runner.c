/* The ThreadSanitizer build's test runner (see criterion/criterion.h): every registered test
 * whose "suite/name" matches --filter (a glob, with Criterion's @(a|b) and !(a|b)), each in a
 * child process between its suite's init and fini, --jobs of them at once, each killed after
 * --timeout seconds when one is given (a hung GPU test ends alone); a test's output is
 * printed when it ends. Exit status 0 when some ran and none failed; a TSan report fails its
 * test (run with TSAN_OPTIONS=halt_on_error=1). */
#define _GNU_SOURCE
#include <fnmatch.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "criterion/criterion.h"

enum { SKIPPED = 77, MAX_TESTS = 256, MAX_SUITES = 16 };
static const struct cr_test *tests[MAX_TESTS];
static const struct cr_suite *suites[MAX_SUITES];
static int n_tests, n_suites;

void cr_register_test(const struct cr_test *t) {
    if (n_tests == MAX_TESTS) fprintf(stderr, "runner: more than %d tests\n", MAX_TESTS), abort();
    tests[n_tests++] = t;
}
void cr_register_suite(const struct cr_suite *s) {
    if (n_suites == MAX_SUITES) fprintf(stderr, "runner: more than %d suites\n", MAX_SUITES), abort();
    suites[n_suites++] = s;
}

void cr_fail(const char *file, int line, const char *what, const char *fmt, ...) {
    fprintf(stderr, "[FAIL] %s:%d: %s", file, line, what);
    if (fmt[1]) {
        va_list a;
        va_start(a, fmt);
        fputc(':', stderr), vfprintf(stderr, fmt, a);
        va_end(a);
    }
    fputc('\n', stderr);
    exit(1);
}
void cr_skip(const char *fmt, ...) {
    va_list a;
    va_start(a, fmt);
    fputs("[SKIP] ", stderr), vfprintf(stderr, fmt, a), fputc('\n', stderr);
    va_end(a);
    exit(SKIPPED);
}

static const struct cr_suite *suite_of(const struct cr_test *t) {
    for (int i = 0; i < n_suites; i++)
        if (!strcmp(suites[i]->name, t->suite)) return suites[i];
    return NULL;
}

/* a test running in a child, its output going to a file of its own */
struct child {
    pid_t pid;
    int test;
    FILE *out;
    struct timespec t0;
};

static pid_t start(int test, FILE *out, unsigned timeout) {
    fflush(NULL);
    const pid_t pid = fork();
    if (pid < 0) perror("fork"), exit(2);
    if (pid == 0) {
        dup2(fileno(out), 1), dup2(fileno(out), 2);
        alarm(timeout); /* SIGALRM ends it: "killed by signal 14" */
        const struct cr_suite *s = suite_of(tests[test]);
        if (s && s->init) s->init();
        tests[test]->run();
        if (s && s->fini) s->fini();
        fflush(NULL);
        exit(0);
    }
    return pid;
}

int main(int argc, char **argv) {
    const char *filter = "*";
    int jobs = 1;
    unsigned timeout = 0;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--filter") && i + 1 < argc) filter = argv[++i];
        else if (!strncmp(argv[i], "--filter=", 9)) filter = argv[i] + 9;
        else if (!strcmp(argv[i], "--jobs") && i + 1 < argc) jobs = atoi(argv[++i]);
        else if (!strncmp(argv[i], "-j", 2) && argv[i][2]) jobs = atoi(argv[i] + 2);
        else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) timeout = (unsigned)atoi(argv[++i]);
    if (jobs < 1 || jobs > 64) jobs = 1;
    struct child running[64];
    int n_running = 0, next = 0, passed = 0, failed = 0, skipped = 0;
    for (;;) {
        /* start the next matching tests while there is a free job */
        for (; next < n_tests && n_running < jobs; next++) {
            char id[256];
            snprintf(id, sizeof id, "%s/%s", tests[next]->suite, tests[next]->name);
            if (fnmatch(filter, id, FNM_EXTMATCH)) continue;
            struct child *c = &running[n_running++];
            c->test = next, c->out = tmpfile();
            if (!c->out) perror("tmpfile"), exit(2);
            clock_gettime(CLOCK_MONOTONIC, &c->t0);
            c->pid = start(next, c->out, timeout);
        }
        if (!n_running) break;
        int status = 0;
        const pid_t pid = wait(&status);
        int k = 0;
        while (k < n_running && running[k].pid != pid) k++;
        if (k == n_running) continue; /* not one of ours */
        struct child c = running[k];
        running[k] = running[--n_running];
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        const double secs = (double)(t1.tv_sec - c.t0.tv_sec) + (double)(t1.tv_nsec - c.t0.tv_nsec) / 1e9;
        /* its output, then its verdict */
        char buf[4096];
        size_t n;
        rewind(c.out);
        while ((n = fread(buf, 1, sizeof buf, c.out))) fwrite(buf, 1, n, stderr);
        fclose(c.out);
        const char *suite = tests[c.test]->suite, *name = tests[c.test]->name;
        const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        if (code == 0) passed++, fprintf(stderr, "[PASS] %s/%s (%.1f s)\n", suite, name, secs);
        else if (code == SKIPPED) skipped++, fprintf(stderr, "[SKIP] %s/%s\n", suite, name);
        else if (code > 0) failed++, fprintf(stderr, "[FAIL] %s/%s: exit status %d (%.1f s)\n", suite, name, code, secs);
        else failed++, fprintf(stderr, "[FAIL] %s/%s: killed by signal %d (%.1f s)\n", suite, name, WTERMSIG(status), secs);
    }
    fprintf(stderr, "[====] Tested: %d | Passing: %d | Failing: %d | Skipped: %d\n", passed + failed + skipped, passed, failed, skipped);
    if (!(passed + failed + skipped)) fprintf(stderr, "runner: no test matches %s\n", filter);
    return failed || !(passed + failed + skipped) ? 1 : 0;
}
