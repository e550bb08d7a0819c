/* bench/gllm_bench: the same benchmark as `gllmk bench`, standalone. */
#include "bench/bench.h"
int main(int argc, char **argv) { return gllm_bench_main(argc, argv); }
