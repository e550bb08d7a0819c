#!/usr/bin/env bash
# Install the benchmark's llama.cpp peer from PyPI into .peers/ (git-ignored): llama-cpp-python,
# which builds llama.cpp and ggml for this CPU (-march=native), and gguf (llama.cpp's GGUF writer).
# Prints the directory of ggml's libraries, for GLLM_GGML_LIB. Bench only: the library never uses it.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/peers/pins.sh
VENV=.peers
[ -x $VENV/bin/python ] || python3 -m venv $VENV
PINS="{\"llama_cpp_python\": \"$LLAMA_CPP_PYTHON\", \"gguf\": \"$GGUF\"}"
# ggml's AMX matmul (built where -march=native has AMX: Sapphire Rapids and later) crashes on
# SmolLM2's q4_1 (segfault in ggml_backend_amx_mul_mat, llama.cpp issue 20824). ggml compiles it
# where __AMX_INT8__ is defined; undefined (-U wins over -march=native's own macros), ggml runs
# its AVX-512 kernels. A build made with other flags is rebuilt.
FLAGS="-DGGML_NATIVE=ON -DCMAKE_C_FLAGS=-U__AMX_INT8__ -DCMAKE_CXX_FLAGS=-U__AMX_INT8__"
if ! $VENV/bin/python -c "import json, numpy, importlib.metadata as m; import sys; sys.exit(any(m.version(p) != v for p, v in json.loads('$PINS').items()))" 2>/dev/null \
   || [ "$(cat $VENV/cmake-args 2>/dev/null)" != "$FLAGS" ]; then
  # built here for this CPU: no wheel cache, so a wheel built elsewhere is never reused
  CMAKE_ARGS="$FLAGS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    $VENV/bin/pip install -q --no-cache-dir --force-reinstall --no-deps "llama-cpp-python==$LLAMA_CPP_PYTHON" >&2
  $VENV/bin/pip install -q --no-cache-dir "llama-cpp-python==$LLAMA_CPP_PYTHON" "gguf==$GGUF" numpy >&2
  echo "$FLAGS" > $VENV/cmake-args
fi
$VENV/bin/python -c "import llama_cpp, os; print(os.path.join(os.path.dirname(llama_cpp.__file__), 'lib'))"
