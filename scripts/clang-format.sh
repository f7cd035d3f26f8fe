#!/usr/bin/env bash
# Formats the native sources (C++, CUDA) with clang-format and .clang-format;
# with --check, lists the files that differ and fails instead.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files 'native/*.cc' 'native/*.h' 'native/*.cu' 'native/*.cuh' 'native/*.inc')
if [[ ${1:-} == --check ]]; then
  bad=0
  for f in "${files[@]}"; do
    clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || { echo "not formatted: $f"; bad=1; }
  done
  exit $bad
fi
clang-format -i "${files[@]}"
