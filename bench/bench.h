/* The benchmark, shared by `gllmk bench` and bench/gllm_bench. */
#ifndef GLLM_BENCH_H
#define GLLM_BENCH_H
int gllm_bench_main(int argc, char **argv);
#endif
