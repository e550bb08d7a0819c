/* Which ISA levels this CPU and OS support (probed once). */
#ifndef GLLM_CPU_FEATURES_H
#define GLLM_CPU_FEATURES_H
#include "kernels.h"
/* 1 if the CPU/OS can run kernels of this ISA level */
int gllm_cpu_supports(gllm_isa_id isa);
#endif
