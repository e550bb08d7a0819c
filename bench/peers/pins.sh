# The peers' versions on PyPI (sourced by setup.sh and cuda_setup.sh): llama-cpp-python carries
# llama.cpp and ggml, gguf is llama.cpp's GGUF writer, diskcache an import of llama-cpp-python.
LLAMA_CPP_PYTHON=0.3.36
GGUF=0.19.0
DISKCACHE=5.6.3
