int gllm_bench_main(int argc, char **argv) { (void)argc; (void)argv; return 0; }
