#!/usr/bin/env bash
# Runs the binding fuzz (test/binding/fuzz.ts) against a build of the whole
# addon (kernels + Node-API bindings) under AddressSanitizer and
# UndefinedBehaviorSanitizer. Node itself is not instrumented, so libasan is
# preloaded into it; typed-array memory comes from Node's malloc, which ASan
# then guards with redzones, so an out-of-bounds kernel write is caught.
#
#   scripts/fuzz-asan.sh [budget-ms]      (default 30000)
#
# The sanitized objects live in build-asan/ (separate from build/, which the
# tests load) and are rebuilt only when a source or header changes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${FLOWVAE_ASAN_DIR:-$root/build-asan}
budget=${1:-30000}
mkdir -p "$out"
cd "$root"

cxx=${CXX:-g++}
napi_include=$(node -p "require('node-api-headers').include_dir")
addon_api_include=$(node -p "require('node-addon-api').include_dir")
# The same defines and floating-point flags as binding.gyp; -O1 keeps reports readable.
flags=(-std=c++17 -O1 -g -fno-omit-frame-pointer -fPIC -fexceptions -ffp-contract=off -fno-math-errno
       -fsanitize=address,undefined -fno-sanitize-recover=all -pthread
       -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS -DNODE_ADDON_API_DISABLE_DEPRECATED
       -I"$napi_include" -I"$addon_api_include" -I"$root/native/include")

headers_newest=$(ls -t native/families.def native/include/flowvae/*.h native/napi/*.h 2>/dev/null | head -1)
objs=()
for src in native/cpu/*.cc native/napi/*.cc; do
  obj="$out/$(basename "$(dirname "$src")")_$(basename "${src%.cc}").o"
  objs+=("$obj")
  if [[ ! -f "$obj" || "$src" -nt "$obj" || "$headers_newest" -nt "$obj" || $0 -nt "$obj" ]]; then
    echo "compile $src"
    "$cxx" "${flags[@]}" -c "$src" -o "$obj" &
    # At most two compilers at once (CI machines have two cores).
    while (( $(jobs -rp | wc -l) >= 2 )); do wait -n; done
  fi
done
while (( $(jobs -rp | wc -l) > 0 )); do wait -n; done
"$cxx" "${flags[@]}" -shared "${objs[@]}" -o "$out/flowvae.node"

# The fuzz driver as one plain-JS file (esbuild from the dev dependencies), so
# the sanitized process runs nothing but node.
node_modules/.bin/esbuild test/binding/fuzz-main.ts --bundle --platform=node --target=node20 \
  --log-level=warning --outfile="$out/fuzz-main.js"

libasan=$("$cxx" -print-file-name=libasan.so)
# detect_leaks=0: LeakSanitizer would report Node's own allocations at exit.
# Node reserves large address ranges (V8 cage), hence no overcommit checks.
# allow_user_segv_handler=0: keep ASan's SIGSEGV report (Node installs its own handler).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:allocator_may_return_null=1:detect_stack_use_after_return=0:allow_user_segv_handler=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
echo "fuzzing the sanitized addon for up to ${budget} ms"
LD_PRELOAD="$libasan" FLOWVAE_NUM_THREADS=${FLOWVAE_NUM_THREADS:-2} \
  node "$out/fuzz-main.js" "$out/flowvae.node" "${FLOWVAE_FUZZ_SEED:-20240611}" "$budget"
