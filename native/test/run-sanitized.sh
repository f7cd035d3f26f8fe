#!/usr/bin/env bash
# Builds the native kernels with their test driver (no Node) under
# AddressSanitizer + UndefinedBehaviorSanitizer and runs it. Any finding
# aborts with a non-zero status.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${FLOWVAE_SANITIZE_DIR:-$root/build-sanitize}
mkdir -p "$out"
cxx=${CXX:-g++}
flags=(-std=c++17 -O1 -g -fno-omit-frame-pointer -ffp-contract=off -fno-math-errno
       -fsanitize=address,undefined -fno-sanitize-recover=all -pthread -I"$root/native/include")
objs=()
for src in "$root"/native/cpu/*.cc "$root"/native/test/*.cc; do
  obj="$out/$(basename "$(dirname "$src")")_$(basename "${src%.cc}").o"
  objs+=("$obj")
  if [[ ! -f "$obj" || "$src" -nt "$obj" || "$root/native/test/check.h" -nt "$obj" || "$root/native/families.def" -nt "$obj" ]]; then
    echo "compile $(basename "$src")"
    "$cxx" "${flags[@]}" -c "$src" -o "$obj" &
    # At most two compilers at once (CI machines have two cores).
    while (( $(jobs -rp | wc -l) >= 2 )); do wait -n; done
  fi
done
wait
# Headers changed since the objects were built are caught by a clean CI tree.
"$cxx" "${flags[@]}" "${objs[@]}" -o "$out/kernel_test"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
"$out/kernel_test"
