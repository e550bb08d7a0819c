#!/usr/bin/env bash
# Build the GPU peer here, with nvcc: llama.cpp's CUDA backend from the pinned llama-cpp-python
# sdist (PyPI; llama.cpp and ggml inside), assembled as that package, ctypes bindings and shared
# libraries, in .peers-cuda/ (git-ignored). scripts/gpu-pack.sh carries it to the GPU machine,
# where bench/peers/llama_peer.py runs it on the workloads of `gllmk bench --op model`; it
# needs only the machine's cuBLAS there. Device code for $GLLM_PEER_ARCHS (CMake's
# CUDA_ARCHITECTURES, default 90-real: the H100 and H200), flash attention and CUDA graphs on,
# as llama.cpp's defaults. One arch took 35 minutes on 2 cores; a second run reuses the build.
# Bench only: the library never uses it.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/peers/pins.sh
command -v nvcc >/dev/null || { echo "cuda_setup.sh: no nvcc (the CUDA toolkit) on the PATH" >&2; exit 1; }
SRC=.peers-cuda/src/llama_cpp_python-$LLAMA_CPP_PYTHON OUT=.peers-cuda/llama_cpp_python
if [ ! -d $SRC ]; then
  mkdir -p .peers-cuda/src
  python3 -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$LLAMA_CPP_PYTHON" -d .peers-cuda/src
  tar xzf .peers-cuda/src/llama_cpp_python-$LLAMA_CPP_PYTHON.tar.gz -C .peers-cuda/src
fi
cmake -S $SRC/vendor/llama.cpp -B .peers-cuda/build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
  -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="${GLLM_PEER_ARCHS:-90-real}" -DGGML_CUDA_NCCL=OFF -DGGML_NATIVE=OFF \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF >/dev/null
cmake --build .peers-cuda/build -j "$(nproc)" --target llama
# the package: its Python files, and in llama_cpp/lib the libraries it loads (with cudart)
rm -rf $OUT && mkdir -p $OUT/llama_cpp/lib
cp $SRC/llama_cpp/*.py $OUT/llama_cpp/
find .peers-cuda/build/bin -maxdepth 1 -name 'lib*.so*' -exec cp -a {} $OUT/llama_cpp/lib/ \;
cp -L "$(dirname "$(command -v nvcc)")/../lib64/libcudart.so.13" $OUT/llama_cpp/lib/
python3 -m pip download -q --no-deps --only-binary :all: "diskcache==$DISKCACHE" -d .peers-cuda/src
python3 -m zipfile -e .peers-cuda/src/diskcache-$DISKCACHE-py3-none-any.whl $OUT
du -sh $OUT
