"""numpy (BLAS SGEMM) peer for bench/dense.ts.

Reads a JSON spec from argv[1]:
  {"minSeconds": s, "rounds": r,
   "cases": [{"kind": "forward" | "train", "batch": B, "inDim": I, "outDim": O}
             | {"kind": "gemm", "transA": bool, "transB": bool, "m": M, "n": N, "k": K}]}
and prints {"numpy": version, "blas": path of the BLAS library loaded,
"results": [seconds per call, ...]} (median of rounds).

float32 throughout, written the way numpy users write a dense layer, at its
best: outputs preallocated and filled with out= (no temporaries), transposes
as views (numpy hands BLAS the transpose flags, it copies nothing).
  forward: y = x Wᵀ + b
  train:   forward, then dx = dy W, dW = dyᵀ x, db = Σ_rows dy
  gemm:    C = op(A) op(B)
Threads come from the environment (OPENBLAS_NUM_THREADS etc., set by the
caller). numpy links whatever libblas.so.3 the system provides: Debian's
alternatives pick OpenBLAS when libopenblas0 is installed, else the slow
reference BLAS; the "blas" field says which one ran.
"""
import json
import sys
import time

import numpy as np


def blas_library():
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "blas" in line.lower() and "/" in line}
    except OSError:
        return "unknown"
    # Prefer the library that implements SGEMM over the thin wrappers.
    for key in ("openblas", "mkl", "blis", "libblas"):
        for p in sorted(paths):
            if key in p.lower():
                return p
    return ", ".join(sorted(paths)) or "unknown"


def time_it(fn, min_seconds, rounds):
    fn()
    calls = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_seconds / 4 or calls > (1 << 20):
            calls = max(1, int(calls * min_seconds / max(dt, 1e-9)) + 1)
            break
        calls *= 4
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - t0) / calls)
    samples.sort()
    return samples[len(samples) // 2]


def rand(rng, *shape):
    return rng.uniform(-1, 1, size=shape).astype(np.float32)


def layer_case(case, rng):
    b, i, o = case["batch"], case["inDim"], case["outDim"]
    x, w, bias = rand(rng, b, i), rand(rng, o, i), rand(rng, o)
    dy = rand(rng, b, o)
    y = np.empty((b, o), np.float32)
    dx = np.empty((b, i), np.float32)
    dw = np.empty((o, i), np.float32)
    db = np.empty((o,), np.float32)

    def forward():
        np.matmul(x, w.T, out=y)
        np.add(y, bias, out=y)

    def train():
        forward()
        np.matmul(dy, w, out=dx)
        np.matmul(dy.T, x, out=dw)
        np.sum(dy, axis=0, out=db)

    return forward if case["kind"] == "forward" else train


def gemm_case(case, rng):
    m, n, k = case["m"], case["n"], case["k"]
    a = rand(rng, k, m).T if case["transA"] else rand(rng, m, k)
    b = rand(rng, n, k).T if case["transB"] else rand(rng, k, n)
    c = np.empty((m, n), np.float32)
    return lambda: np.matmul(a, b, out=c)


def main():
    spec = json.loads(sys.argv[1])
    rng = np.random.default_rng(0)
    results = []
    for case in spec["cases"]:
        fn = gemm_case(case, rng) if case["kind"] == "gemm" else layer_case(case, rng)
        results.append(time_it(fn, spec["minSeconds"], spec["rounds"]))
    print(json.dumps({"numpy": np.__version__, "blas": blas_library(), "results": results}))


if __name__ == "__main__":
    main()
