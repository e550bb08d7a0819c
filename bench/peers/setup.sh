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
if ! $VENV/bin/python -c "import json, numpy, importlib.metadata as m; import sys; sys.exit(any(m.version(p) != v for p, v in json.loads('$PINS').items()))" 2>/dev/null; then
  # built here for this CPU: no wheel cache, so a wheel built elsewhere is never reused
  CMAKE_ARGS="-DGGML_NATIVE=ON" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    $VENV/bin/pip install -q --no-cache-dir "llama-cpp-python==$LLAMA_CPP_PYTHON" "gguf==$GGUF" numpy >&2
fi
$VENV/bin/python -c "import llama_cpp, os; print(os.path.join(os.path.dirname(llama_cpp.__file__), 'lib'))"
