/* The benchmark, shared by `gllmk bench` and bench/gllm_bench. */
#ifndef GLLM_BENCH_H
#define GLLM_BENCH_H
int gllm_bench_main(int argc, char **argv);
double gllm_bench_now(void); /* monotonic seconds */
void gllm_bench_settle(int ms); /* lets the thread pools of the last case go idle */
/* bench_cuda.c: the device's copy bandwidth and the CUDA gemv table */
void gllm_bench_cuda(int quick);
extern double gllm_bench_cuda_bw; /* the device copy bandwidth measured last (bytes/s), 0 before */
#endif
