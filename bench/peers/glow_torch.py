"""PyTorch CPU peer for bench/glow.ts: one Glow step without its coupling,
ActNorm then the invertible linear map in LU form, on vectors [B, D], written
as Glow ports write it (rosinality/glow-pytorch ActNorm and InvConv2dLU with
the 1x1 convolution as a matrix product): W = P (L*l_mask + I)
(U*u_mask + diag(s_sign * exp(w_s))), log|det| = sum(logs) + sum(w_s).
"backward" times forward plus autograd backward to the input and every
parameter; "forward" runs under no_grad.

argv[1]: JSON {threads, minSeconds, rounds, cases: [{batch, dim, mode}]}.
Prints {"torch": version, "results": [median seconds per call, ...]}.
"""
import ctypes
import ctypes.util
import json
import math
import sys
import time

import torch

spec = json.loads(sys.argv[1])
threads = int(spec["threads"])
torch.set_num_threads(threads)
for name in ("openblas", "openblas64", "openblasp"):  # torch.set_num_threads does not reach OpenBLAS
    path = ctypes.util.find_library(name)
    if path:
        lib = ctypes.CDLL(path)
        for fn in ("openblas_set_num_threads", "openblas_set_num_threads64_"):
            if hasattr(lib, fn):
                getattr(lib, fn)(threads)


class ActNorm(torch.nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.loc = torch.nn.Parameter(torch.zeros(dim))
        self.logs = torch.nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        y = x * torch.exp(self.logs) + self.loc
        return y, self.logs.sum().expand(x.shape[0])


class InvLinearLU(torch.nn.Module):
    def __init__(self, dim, gen):
        super().__init__()
        q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=gen))
        p, l, u = torch.linalg.lu(q)
        s = torch.diag(u)
        self.register_buffer("w_p", p)
        self.register_buffer("s_sign", torch.sign(s))
        self.register_buffer("l_mask", torch.tril(torch.ones(dim, dim), -1))
        self.register_buffer("u_mask", torch.triu(torch.ones(dim, dim), 1))
        self.register_buffer("eye", torch.eye(dim))
        self.w_l = torch.nn.Parameter(l)
        self.w_s = torch.nn.Parameter(torch.log(torch.abs(s)))
        self.w_u = torch.nn.Parameter(torch.triu(u, 1))

    def forward(self, x):
        w = self.w_p @ (self.w_l * self.l_mask + self.eye) @ (self.w_u * self.u_mask + torch.diag(self.s_sign * torch.exp(self.w_s)))
        return x @ w.t(), self.w_s.sum().expand(x.shape[0])


def make_case(c):
    B, D = c["batch"], c["dim"]
    gen = torch.Generator().manual_seed(0)
    actnorm, linear = ActNorm(D), InvLinearLU(D, gen)
    x = torch.randn(B, D, generator=gen)
    gy = torch.randn(B, D, generator=gen)
    gl = torch.randn(B, generator=gen)
    params = list(actnorm.parameters()) + list(linear.parameters())

    def run(backward):
        xx = x.requires_grad_(backward) if backward else x
        h, ld1 = actnorm(xx)
        y, ld2 = linear(h)
        total = ld1 + ld2
        if backward:
            torch.autograd.backward((y, total), (gy, gl))
            for p in params:
                p.grad = None
            xx.grad = None
        return y, total

    return run


def time_it(fn, min_seconds, rounds):
    fn()  # warm-up
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
    out = []
    for c in spec["cases"]:
        run = make_case(c)
        if c["mode"] == "backward":
            out.append(time_it(lambda: run(True), spec["minSeconds"], spec["rounds"]))
        else:
            with torch.no_grad():
                out.append(time_it(lambda: run(False), spec["minSeconds"], spec["rounds"]))
    print(json.dumps({"torch": torch.__version__, "results": out}))


if __name__ == "__main__":
    main()
