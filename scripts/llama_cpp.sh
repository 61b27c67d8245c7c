#!/usr/bin/env bash
# llama-cpp-python, the real llama.cpp client the GGUF tests and benchmark run exports in. Not a dependency of
# lightning_llm: built from its PyPI sdist once per machine (cmake + ninja, CPU only, for this CPU), cached as a
# wheel under ~/.cache/lightning_llm/wheels/<cpu flags>, then installed into .venv. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=0.3.36
.venv/bin/python -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$VERSION')" 2>/dev/null && exit 0
# built for this CPU's instruction sets (AVX-512 here, AVX2 elsewhere), one cached wheel per set, named one by
# one rather than -march=native: native also turns on ggml's AMX kernels, which die with SIGILL in VMs that list
# AMX but do not grant its tile state (seen on this project's AMX hosts: q8_0/q4_0 crash, f32/f16 run)
CPU=$(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2)
has() { [[ " $CPU " == *" $1 "* ]] && echo ON || echo OFF; }
ARGS="-DGGML_NATIVE=OFF -DGGML_SSE42=$(has sse4_2) -DGGML_AVX=$(has avx) -DGGML_AVX2=$(has avx2) -DGGML_BMI2=$(has bmi2) \
-DGGML_FMA=$(has fma) -DGGML_F16C=$(has f16c) -DGGML_AVX_VNNI=$(has avx_vnni) -DGGML_AVX512=$(has avx512bw) \
-DGGML_AVX512_VBMI=$(has avx512vbmi) -DGGML_AVX512_VNNI=$(has avx512_vnni) -DGGML_AVX512_BF16=$(has avx512_bf16) \
-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
KEY=$(echo "$ARGS" | sha256sum | cut -c1-12)
WHEELS="${XDG_CACHE_HOME:-$HOME/.cache}/lightning_llm/wheels/llama-cpp-$KEY"
if ! ls "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $VERSION for this CPU (once; about 6 minutes on 2 cores) into $WHEELS"
  mkdir -p "$WHEELS"
  # --no-cache-dir: pip's own wheel cache is keyed by the sdist, not by CMAKE_ARGS
  CMAKE_ARGS="$ARGS -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF \
-DLLAMA_CURL=OFF -DLLAVA_BUILD=OFF -DLLAMA_OPENSSL=OFF" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
    .venv/bin/pip wheel --no-deps --no-cache-dir -q "llama-cpp-python==$VERSION" -w "$WHEELS"
fi
.venv/bin/pip install -q --no-deps --force-reinstall "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl
# its runtime dependencies besides numpy, jinja2 and typing-extensions, which lightning_llm already brings
.venv/bin/pip install -q diskcache
