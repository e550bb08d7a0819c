#include "core/workspace.h"
#include <pthread.h>
#include <stdlib.h>

/* chunks of growing size; a chunk once made is kept (reused by later calls) and freed when
 * its thread exits */
#define MAX_CHUNKS 24

typedef struct {
    char *base[MAX_CHUNKS];
    size_t size[MAX_CHUNKS];
    int n;
    size_t used; /* a global offset: chunk i covers [start(i), start(i) + size[i]) */
} workspace;

static _Thread_local workspace ws;
static pthread_key_t exit_key;
static int have_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

static void free_chunks(void *p) {
    workspace *w = p;
    for (int i = 0; i < w->n; i++) free(w->base[i]);
    w->n = 0, w->used = 0;
}

static void make_key(void) { have_key = pthread_key_create(&exit_key, free_chunks) == 0; }

static size_t start(int c) {
    size_t s = 0;
    for (int i = 0; i < c; i++) s += ws.size[i];
    return s;
}

size_t gllm_ws_mark(void) { return ws.used; }

void gllm_ws_release(size_t mark) { ws.used = mark < ws.used ? mark : ws.used; }

void gllm_ws_trim(void) {
    if (!ws.used) free_chunks(&ws);
}

void *gllm_ws_alloc(size_t bytes) {
    bytes = (bytes + 63) / 64 * 64;
    for (int c = 0;; c++) {
        if (c == ws.n) { /* a new chunk, at least twice the last */
            if (c == MAX_CHUNKS) return NULL;
            size_t sz = c ? 2 * ws.size[c - 1] : (size_t)1 << 20;
            while (sz < bytes) sz *= 2;
            void *p;
            if (posix_memalign(&p, 64, sz)) return NULL;
            if (!c) { /* the thread's first chunk: free them all when it exits */
                pthread_once(&exit_once, make_key);
                if (have_key) pthread_setspecific(exit_key, &ws); /* else kept, as before */
            }
            ws.base[c] = p, ws.size[c] = sz, ws.n++;
        }
        const size_t s = start(c), e = s + ws.size[c];
        if (ws.used >= e) continue;
        const size_t at = ws.used > s ? ws.used : s;
        if (at + bytes <= e) {
            ws.used = at + bytes;
            return ws.base[c] + (at - s);
        }
        ws.used = e; /* the rest of this chunk is skipped */
    }
}
