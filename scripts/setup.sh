#!/usr/bin/env bash
# Install what building, testing and benchmarking gllm-kernels needs (Debian + PyPI).
set -euo pipefail
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
pkgs="python3 python3-pip build-essential cmake ninja-build pkg-config clang-format-14 clang-14 libclang-rt-14-dev libcriterion-dev libopenblas0-pthread"
[ "${GLLM_CROSS:-1}" = 1 ] && pkgs="$pkgs gcc-aarch64-linux-gnu qemu-user"
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
# the generator (jinja2, unicodedata2) and the reference checks (numpy); PEP 668 systems need the override
pip_install() { python3 -m pip install -q "$1" 2>/dev/null || python3 -m pip install -q --break-system-packages "$1"; }
python3 -c "import jinja2" 2>/dev/null || pip_install jinja2
python3 -c "import numpy" 2>/dev/null || pip_install numpy
# the tokenizers' Unicode tables: llama.cpp's version of the database (codegen/unicode.py)
python3 -c "import unicodedata2 as u; assert u.unidata_version == '15.1.0'" 2>/dev/null || pip_install unicodedata2==15.1.0
