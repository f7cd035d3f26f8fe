"""PyTorch CPU peer for bench/flows.ts.

Reads a JSON spec from argv[1]:
  {"threads": n, "minSeconds": s, "rounds": r,
   "cases": [{"family": "planar"|"radial", "batch": B, "dim": D, "layers": K,
              "amortized": bool, "mode": "forward"|"backward"}]}
and prints {"torch": version, "results": [seconds per call or null, ...]}
(median of rounds; null for cases skipped after "budgetSeconds").

The stacks are written the way PyTorch users write them: one nn.Module per
layer with autograd, the log-det summed over layers. Amortized parameters
arrive as one [B, K*P] tensor (an encoder's output), split into per-layer
tensors with unbind, not per-layer indexing. "backward" times forward plus
autograd backward to the input and every parameter.
"""
import json
import math
import sys
import time

import torch
import torch.nn.functional as F


class Planar(torch.nn.Module):
    """f(z) = z + û tanh(wᵀz + b), û = u + (m(wᵀu) − wᵀu) w/‖w‖², m(x) = −1 + softplus(x)."""

    def __init__(self, dim):
        super().__init__()
        s = 1.0 / math.sqrt(dim)
        self.u = torch.nn.Parameter(torch.empty(dim).uniform_(-s, s))
        self.w = torch.nn.Parameter(torch.empty(dim).uniform_(-s, s))
        self.b = torch.nn.Parameter(torch.empty(1).uniform_(-s, s))

    def forward(self, z):
        return planar(z, self.u, self.w, self.b)


def planar(z, u, w, b):
    # Shared: u, w [D], b [1]; amortized: u, w [B, D], b [B]. As in normflows:
    # log|det| = log|1 + (wᵀû)(1 − t²)|, which avoids forming ψ(z) [B, D].
    if w.dim() == 2:
        b = b.unsqueeze(-1)
    wu = (w * u).sum(-1, keepdim=True)
    u_hat = u + (F.softplus(wu) - 1 - wu) * w / (w * w).sum(-1, keepdim=True)
    t = torch.tanh((z * w).sum(-1, keepdim=True) + b)
    y = z + t * u_hat
    log_det = torch.log(torch.abs(1 + (w * u_hat).sum(-1, keepdim=True) * (1 - t * t))).squeeze(-1)
    return y, log_det


class Radial(torch.nn.Module):
    """f(z) = z + β h(α, r)(z − z0), α = softplus(α̃), β = −α + softplus(β̃)."""

    def __init__(self, dim):
        super().__init__()
        s = 1.0 / math.sqrt(dim)
        self.z0 = torch.nn.Parameter(torch.empty(dim).uniform_(-s, s))
        self.alpha = torch.nn.Parameter(torch.empty(1).uniform_(-s, s))
        self.beta = torch.nn.Parameter(torch.empty(1).uniform_(-s, s))

    def forward(self, z):
        return radial(z, self.z0, self.alpha, self.beta)


def radial(z, z0, alpha_raw, beta_raw):
    # Shared: z0 [D], alpha_raw/beta_raw [1]; amortized: z0 [B, D], alpha_raw/beta_raw [B] (made [B, 1]).
    if z0.dim() == 2:
        alpha_raw = alpha_raw.unsqueeze(-1)
        beta_raw = beta_raw.unsqueeze(-1)
    alpha = F.softplus(alpha_raw)
    beta = -alpha + F.softplus(beta_raw)
    diff = z - z0
    r = diff.norm(dim=-1, keepdim=True)
    h = 1 / (alpha + r)
    bh = beta * h
    y = z + bh * diff
    d = z.shape[-1]
    log_det = ((d - 1) * torch.log1p(bh) + torch.log1p(bh - beta * r * h * h)).squeeze(-1)
    return y, log_det


FAMILIES = {
    "planar": (Planar, planar, lambda d: (d, d, 0)),  # u [K,D], w [K,D], b [K]
    "radial": (Radial, radial, lambda d: (d, 0, 0)),  # z0 [K,D], alpha [K], beta [K]
}


def make_case(c):
    family, B, D, K, amortized = c["family"], c["batch"], c["dim"], c["layers"], c["amortized"]
    module_cls, fn, _ = FAMILIES[family]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(B, D, generator=gen)
    gy = torch.randn(B, D, generator=gen)
    gl = torch.randn(B, generator=gen)
    if amortized:
        s = 1.0 / math.sqrt(D)
        if family == "planar":
            P = 2 * D + 1
        else:
            P = D + 2
        params = ((torch.rand(B, K * P, generator=gen) * 2 - 1) * s).requires_grad_(True)

        def run(backward):
            xx = x.requires_grad_(backward) if backward else x
            if family == "planar":
                u = params[:, : K * D].view(B, K, D).unbind(1)
                w = params[:, K * D : 2 * K * D].view(B, K, D).unbind(1)
                b = params[:, 2 * K * D :].unbind(1)
                layers = zip(u, w, b)
            else:
                z0 = params[:, : K * D].view(B, K, D).unbind(1)
                al = params[:, K * D : K * D + K].unbind(1)
                be = params[:, K * D + K :].unbind(1)
                layers = zip(z0, al, be)
            z, total = xx, 0
            for p in layers:
                z, ld = fn(z, *p)
                total = total + ld
            if backward:
                torch.autograd.backward((z, total), (gy, gl))
                params.grad = None
                xx.grad = None
            return z, total
    else:
        torch.manual_seed(0)
        stack = torch.nn.ModuleList([module_cls(D) for _ in range(K)])

        def run(backward):
            xx = x.requires_grad_(backward) if backward else x
            z, total = xx, 0
            for layer in stack:
                z, ld = layer(z)
                total = total + ld
            if backward:
                torch.autograd.backward((z, total), (gy, gl))
                for p in stack.parameters():
                    p.grad = None
                xx.grad = None
            return z, total

    return run


def time_it(fn, min_seconds, rounds):
    """Median seconds per call over `rounds` rounds of enough calls to last min_seconds."""
    t0 = time.perf_counter()
    fn()  # warm-up
    first = time.perf_counter() - t0
    if first >= min_seconds:  # slow case: one more call is the measurement
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
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
    spec = json.loads(sys.argv[1])
    torch.set_num_threads(spec["threads"])
    out = []
    start = time.perf_counter()
    for c in spec["cases"]:
        # Past the time budget the remaining cases are skipped (reported as null).
        if time.perf_counter() - start > spec.get("budgetSeconds", float("inf")):
            out.append(None)
            continue
        run = make_case(c)
        backward = c["mode"] == "backward"
        if backward:
            out.append(time_it(lambda: run(True), spec["minSeconds"], spec["rounds"]))
        else:
            with torch.no_grad():
                out.append(time_it(lambda: run(False), spec["minSeconds"], spec["rounds"]))
    print(json.dumps({"torch": torch.__version__, "results": out}))


if __name__ == "__main__":
    main()
