/* A small JSON reader for safetensors headers and config.json: the whole text is parsed
 * into a node array (bounded depth; sizes checked against the text), strings point into
 * the text (escapes are not decoded; keys here have none). */
#ifndef GLLM_FORMAT_JSON_H
#define GLLM_FORMAT_JSON_H
#include <stddef.h>
#include "gllm_kernels.h"

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUM, JSON_STR, JSON_ARR, JSON_OBJ } gllm_json_type;

typedef struct {
    gllm_json_type type;
    const char *s; /* JSON_STR: the raw characters between the quotes */
    size_t len;
    double num;
    size_t n;      /* JSON_ARR / JSON_OBJ: children (objects: key, value, key, value, ...) */
    size_t first;  /* index of the first child; children follow in order, each subtree contiguous */
    size_t end;    /* one past the last node of this subtree */
} gllm_json_node;

typedef struct {
    gllm_json_node *node;
    size_t n;
} gllm_json;

gllm_status gllm_json_parse(const char *text, size_t len, gllm_json *out);
void gllm_json_free(gllm_json *j);
/* the value of key in object node o (of a key given twice, the last), or NULL */
const gllm_json_node *gllm_json_get(const gllm_json *j, const gllm_json_node *o, const char *key);
/* the sibling after child c (its subtree skipped); walk children with it, not with _at */
const gllm_json_node *gllm_json_next(const gllm_json *j, const gllm_json_node *c);
/* child i of an array node */
const gllm_json_node *gllm_json_at(const gllm_json *j, const gllm_json_node *a, size_t i);
int gllm_json_is(const gllm_json_node *s, const char *text); /* a string equal to text */
#endif
