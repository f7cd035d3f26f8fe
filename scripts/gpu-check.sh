#!/usr/bin/env bash
# Runs the cuda backend's tests on a machine with an NVIDIA GPU against a
# CUDA build of the addon made beforehand (this script builds nothing):
#
#   FLOWVAE_CUDA=1 npx cmake-js compile -O build-cuda      # where nvcc is
#   bash scripts/gpu-check.sh [ADDON] [NODE]                # where the GPU is
#
#   ADDON  the CUDA-built addon (default: build-cuda/Release/flowvae.node)
#   NODE   the node binary to run (default: node on PATH)
#
# Needs this checkout's node_modules (npm ci). The addon is loaded in place of
# build/Release through node-gyp-build's FLOWVAE_PREBUILD. Runs every test
# file with a cuda suite (describeBackends([... 'cuda'])): each family with
# CUDA kernels against the reference, the flow properties, the argument
# errors, the wiring and the cuda availability checks, with
# FLOWVAE_CUDA_SYNC=1 so that a kernel fault names its kernel. Writes
# bench/results/gpu-check.json (device, driver, what the addon reports, test
# counts and failures) and exits non-zero if cuda is unavailable or a test fails.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
addon=$(realpath -m "${1:-build-cuda/Release/flowvae.node}")
node_bin=$(command -v "${2:-node}" || true)
[[ -f $addon ]] || { echo "no addon at $addon (build it with: FLOWVAE_CUDA=1 npx cmake-js compile -O build-cuda)"; exit 2; }
[[ -n $node_bin ]] || { echo "no node binary '${2:-node}'"; exit 2; }
[[ -f node_modules/vitest/vitest.mjs ]] || { echo "node_modules missing: run npm ci first"; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/flowvae-gpu.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/stage/build/Release" bench/results
cp "$addon" "$work/stage/build/Release/flowvae.node"
export FLOWVAE_PREBUILD=$work/stage FLOWVAE_CUDA_SYNC=1

smi="nvidia-smi not found"
command -v nvidia-smi >/dev/null && smi=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)
echo "node: $node_bin ($("$node_bin" --version)); addon: $addon"
echo "nvidia-smi: $smi"
"$node_bin" -e '
  const a = require(process.argv[1]);
  const s = a.cuda ? a.cuda.status() : { available: false, reason: "this addon was built without CUDA" };
  console.log("cuda:", s.available ? "available on " + s.device : "unavailable: " + s.reason);
  process.exit(s.available ? 0 : 1);' "$work/stage/build/Release/flowvae.node"
available=$?

tests_rc=1
if [[ $available == 0 ]]; then
  # The files that name cuda in a describeBackends list (backend.test.ts among them), and the wiring.
  mapfile -t cuda_files < <(grep -l "describeBackends(\[[^]]*'cuda'" test/*.test.ts)
  "$node_bin" node_modules/vitest/vitest.mjs run "${cuda_files[@]}" test/wiring.test.ts \
    --reporter=default --reporter=json --outputFile="$work/report.json"
  tests_rc=$?
fi

"$node_bin" -e '
  const fs = require("fs");
  const [addon, smi, node, reportFile, out] = process.argv.slice(1);
  const a = require(addon);
  const result = { date: new Date().toISOString(), node, nvidiaSmi: smi, cuda: a.cuda ? a.cuda.status() : null };
  if (fs.existsSync(reportFile)) {
    const r = JSON.parse(fs.readFileSync(reportFile, "utf8"));
    const failures = r.testResults.flatMap((f) => f.assertionResults.filter((t) => t.status === "failed")
      .map((t) => ({ file: f.name.replace(process.cwd() + "/", ""), test: t.fullName, message: (t.failureMessages[0] || "").split("\n")[0] })));
    result.tests = { passed: r.numPassedTests, failed: r.numFailedTests, skipped: r.numPendingTests, total: r.numTotalTests, failures };
  }
  fs.writeFileSync(out, JSON.stringify(result, null, 2) + "\n");
  console.log("wrote " + out);' \
  "$work/stage/build/Release/flowvae.node" "$smi" "$("$node_bin" --version)" "$work/report.json" bench/results/gpu-check.json

[[ $available == 0 && $tests_rc == 0 ]]
