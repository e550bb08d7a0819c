#!/usr/bin/env bash
# Install the library from a build tree into a scratch prefix; build and run a
# consumer with find_package (shared and static) and with pkg-config; check
# that the shared library exports only the public gllm_ API.
set -euo pipefail
build=$1
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
here=$(cd "$(dirname "$0")" && pwd)
cmake --install "$build" --prefix "$prefix" >/dev/null
cmake -S "$here" -B "$prefix/consumer" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$prefix/consumer" >/dev/null
LD_LIBRARY_PATH="$prefix/lib" "$prefix/consumer/consumer"
"$prefix/consumer/consumer_static"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
cc "$here/consumer.c" -o "$prefix/consumer_pc" $(pkg-config --cflags --libs gllm_kernels) -lm
LD_LIBRARY_PATH="$prefix/lib" "$prefix/consumer_pc"
bad=$(nm -D --defined-only "$prefix"/lib/libgllm_kernels.so | awk '{print $3}' | grep -v '^gllm_' || true)
if [ -n "$bad" ]; then echo "exported symbols outside the gllm_ API:"; echo "$bad"; exit 1; fi
echo "install: find_package (shared, static), pkg-config and exports OK ($(nm -D --defined-only "$prefix"/lib/libgllm_kernels.so | grep -c ' T gllm_') gllm_ functions)"
