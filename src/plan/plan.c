#include "plan/plan.h"
#include <stdlib.h>
#include "core/error.h"

gllm_status gllm_plan_add(gllm_plan *p, gllm_step s) {
    if (p->n_steps == p->cap) {
        gllm_step *n = realloc(p->steps, (p->cap = p->cap * 2 + 16) * sizeof *n);
        if (!n) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "plan: no memory");
        p->steps = n;
    }
    p->steps[p->n_steps++] = s;
    return GLLM_OK;
}

void gllm_plan_free(gllm_plan *p) {
    free(p->steps);
    free(p->layer_steps);
    p->steps = NULL, p->layer_steps = NULL, p->n_steps = p->cap = 0;
}

size_t gllm_plan_out_width(const gllm_plan *p, const gllm_step *t) {
    switch (t->kind) {
    case STEP_MATMUL:
    case STEP_FFN_UP:
    case STEP_HEAD: return t->n;
    case STEP_QKV_ROPE:
    case STEP_QKV:
    case STEP_ATTN:
    case STEP_SELF_ATTN: return p->width[BUF_Q];
    default: return t->k;
    }
}
