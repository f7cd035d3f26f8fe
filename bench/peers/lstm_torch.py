"""PyTorch CPU peer for bench/lstm.ts: torch.nn.LSTM(inDim, hidden,
batch_first=True) over full-length sequences [B, T, in] with given (h0, c0),
as its users write it. "backward" times the forward plus autograd backward
to x, h0, c0 and every parameter from upstream gradients of (y, hn, cn);
"forward" runs under no_grad.

At 2 threads the peer is timed in each of its pool configurations (PyTorch's
intra-op pool and OpenBLAS's: 2/2, 2/1, 1/2) and the best is reported, with
the configuration, so the comparison is against the peer at its best.

argv[1]: JSON {threads, minSeconds, rounds, cases: [{batch, steps, inDim, hidden, mode}]}.
Prints {"torch": version, "results": [median seconds per call, ...], "configs": ["torch/blas", ...]}.
"""
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import set_threads  # noqa: E402

spec = json.loads(sys.argv[1])
threads = int(spec["threads"])
CONFIGS = [(1, 1)] if threads == 1 else [(threads, threads), (threads, 1), (1, threads)]


def make_case(c):
    torch.manual_seed(0)
    B, T, I, H = c["batch"], c["steps"], c["inDim"], c["hidden"]
    m = torch.nn.LSTM(I, H, batch_first=True)
    x = torch.randn(B, T, I)
    h0 = torch.randn(1, B, H)
    c0 = torch.randn(1, B, H)
    dy, dhn, dcn = torch.randn(B, T, H), torch.randn(1, B, H), torch.randn(1, B, H)
    if c["mode"] == "forward":

        def run():
            with torch.no_grad():
                m(x, (h0, c0))

        return run
    x.requires_grad_(True)
    h0.requires_grad_(True)
    c0.requires_grad_(True)

    def run():
        y, (hn, cn) = m(x, (h0, c0))
        torch.autograd.backward([y, hn, cn], [dy, dhn, dcn])

    return run


def time_it(fn, min_seconds, rounds):
    for _ in range(2):
        fn()
    calls = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_seconds / 4 or calls > 1 << 20:
            calls = max(1, math.ceil(calls * min_seconds / max(dt, 1e-9)))
            break
        calls *= 4
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - t0) / calls)
    samples.sort()
    n = len(samples)
    return samples[n // 2] if n % 2 else 0.5 * (samples[n // 2 - 1] + samples[n // 2])


def main():
    out, configs = [], []
    for c in spec["cases"]:
        run = make_case(c)
        best, best_config = math.inf, ""
        for torch_threads, blas_threads in CONFIGS:
            set_threads(torch_threads, blas_threads)
            t = time_it(run, spec["minSeconds"], spec["rounds"])
            if t < best:
                best, best_config = t, f"{torch_threads}/{blas_threads}"
        out.append(best)
        configs.append(best_config)
    print(json.dumps({"torch": torch.__version__, "results": out, "configs": configs}))


if __name__ == "__main__":
    main()
