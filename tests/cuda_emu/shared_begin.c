/* Linked first into the emulator: the start of static __shared__ (section gllm_emu_shared), on
 * a page boundary. For each block, the race check maps the pages from here to the end of the
 * writable segment anew (libcuda_emu.cpp, fresh_shared). */
__attribute__((section("gllm_emu_shared"), aligned(4096), used)) char gllm_emu_shared_begin[1];
