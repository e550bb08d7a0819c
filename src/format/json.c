#include "format/json.h"
#include <stdlib.h>
#include <string.h>
#include "core/error.h"

#define MAX_DEPTH 64

typedef struct {
    const char *p, *end;
    gllm_json *j;
    size_t cap;
} parser;

static void ws(parser *q) {
    while (q->p < q->end && (*q->p == ' ' || *q->p == '\t' || *q->p == '\n' || *q->p == '\r')) q->p++;
}

static long add(parser *q) {
    if (q->j->n == q->cap) {
        /* a node needs at least one byte of text: no more nodes than bytes */
        size_t cap = q->cap ? q->cap * 2 : 64;
        gllm_json_node *n = realloc(q->j->node, cap * sizeof *n);
        if (!n) return -1;
        q->j->node = n, q->cap = cap;
    }
    memset(&q->j->node[q->j->n], 0, sizeof(gllm_json_node));
    return (long)q->j->n++;
}

static int value(parser *q, int depth);

static int string(parser *q, long at) {
    const char *s = ++q->p;
    while (q->p < q->end && *q->p != '"') {
        if (*q->p == '\\' && ++q->p >= q->end) return 0;
        if ((unsigned char)*q->p < 0x20) return 0;
        q->p++;
    }
    if (q->p >= q->end) return 0;
    gllm_json_node *n = &q->j->node[at];
    n->type = JSON_STR, n->s = s, n->len = (size_t)(q->p - s);
    q->p++;
    return 1;
}

static int value(parser *q, int depth) {
    if (depth > MAX_DEPTH) return 0;
    ws(q);
    if (q->p >= q->end) return 0;
    const long at = add(q);
    if (at < 0) return 0;
    const char c = *q->p;
    if (c == '"') return string(q, at);
    if (c == '{' || c == '[') {
        const char close = c == '{' ? '}' : ']';
        q->j->node[at].type = c == '{' ? JSON_OBJ : JSON_ARR;
        q->j->node[at].first = q->j->n;
        q->p++;
        ws(q);
        size_t count = 0;
        if (q->p < q->end && *q->p == close) {
            q->p++;
        } else {
            for (;;) {
                if (c == '{') {
                    ws(q);
                    if (q->p >= q->end || *q->p != '"') return 0;
                    const long k = add(q);
                    if (k < 0 || !string(q, k)) return 0;
                    ws(q);
                    if (q->p >= q->end || *q->p != ':') return 0;
                    q->p++;
                    count++;
                }
                if (!value(q, depth + 1)) return 0;
                count++;
                ws(q);
                if (q->p >= q->end) return 0;
                if (*q->p == ',') {
                    q->p++;
                    continue;
                }
                if (*q->p != close) return 0;
                q->p++;
                break;
            }
        }
        q->j->node[at].n = count;
        q->j->node[at].end = q->j->n;
        return 1;
    }
    gllm_json_node *n = &q->j->node[at];
    if (q->end - q->p >= 4 && !memcmp(q->p, "null", 4)) return n->type = JSON_NULL, q->p += 4, 1;
    if (q->end - q->p >= 4 && !memcmp(q->p, "true", 4)) return n->type = JSON_BOOL, n->num = 1, q->p += 4, 1;
    if (q->end - q->p >= 5 && !memcmp(q->p, "false", 5)) return n->type = JSON_BOOL, q->p += 5, 1;
    char buf[64];
    size_t k = 0;
    while (q->p < q->end && k < sizeof buf - 1 && *q->p && strchr("+-0123456789.eE", *q->p)) buf[k++] = *q->p++;
    if (!k) return 0;
    buf[k] = 0;
    char *e;
    n->type = JSON_NUM, n->num = strtod(buf, &e);
    return *e == 0;
}

gllm_status gllm_json_parse(const char *text, size_t len, gllm_json *out) {
    memset(out, 0, sizeof *out);
    parser q = {text, text + len, out, 0};
    if (!text || !value(&q, 0)) {
        gllm_json_free(out);
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "JSON: malformed at byte %zu", (size_t)(q.p - text));
    }
    ws(&q);
    if (q.p != q.end) {
        gllm_json_free(out);
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "JSON: trailing data at byte %zu", (size_t)(q.p - text));
    }
    out->node[0].end = out->n;
    return GLLM_OK;
}

void gllm_json_free(gllm_json *j) {
    free(j->node);
    j->node = NULL, j->n = 0;
}

const gllm_json_node *gllm_json_next(const gllm_json *j, const gllm_json_node *c) {
    return c->type == JSON_ARR || c->type == JSON_OBJ ? &j->node[c->end] : c + 1;
}

const gllm_json_node *gllm_json_at(const gllm_json *j, const gllm_json_node *a, size_t i) {
    if (!a || (a->type != JSON_ARR && a->type != JSON_OBJ) || i >= a->n) return NULL;
    const gllm_json_node *c = &j->node[a->first];
    for (size_t k = 0; k < i; k++) c = gllm_json_next(j, c);
    return c;
}

int gllm_json_is(const gllm_json_node *s, const char *text) {
    return s && s->type == JSON_STR && s->len == strlen(text) && !memcmp(s->s, text, s->len);
}

const gllm_json_node *gllm_json_get(const gllm_json *j, const gllm_json_node *o, const char *key) {
    if (!o || o->type != JSON_OBJ || o->n < 2) return NULL;
    const gllm_json_node *k = &j->node[o->first], *found = NULL;
    for (size_t i = 0; i + 1 < o->n; i += 2) {
        const gllm_json_node *v = gllm_json_next(j, k);
        if (gllm_json_is(k, key)) found = v; /* a key given twice: the last, as Python's json reads it */
        k = gllm_json_next(j, v); /* at the end: one past the subtree, never read */
    }
    return found;
}
