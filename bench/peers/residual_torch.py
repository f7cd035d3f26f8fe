"""PyTorch CPU peer for bench/residual.ts: a stack of residual blocks
x + g(x) (Behrmann et al. 2019; Chen et al. 2019), forward + log-det +
autograd backward to the input and every parameter.

Reads a JSON spec from argv[1]:
  {"threads": n, "minSeconds": s, "rounds": r,
   "cases": [{"batch": B, "dim": D, "hidden": [H...], "blocks": K,
              "logDet": "exact"|"estimator", "activation": "lipswish"|"elu"}]}
and prints {"torch": version, "results": [seconds per call, ...]} (medians).

Written the way the residual-flows code does it: each linear layer
spectrally normalized by power iteration under no_grad (5 steps per training
forward, as flowvae's default), W·min(1, c/σ̂) with σ̂ = uᵀWv differentiated
through W; the exact log-det from the Jacobian assembled row by row with
autograd (create_graph) and slogdet; the estimator as the Neumann-series
gradient (Chen et al. 2019): power-series value from vector-Jacobian
products, gradient through the surrogate wᵀJv, one Hutchinson vector per
row, 2 exact terms plus a geometric(0.5) count.
"""
import json
import math
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from timing import set_threads  # noqa: E402


class SNLinear(torch.nn.Module):
    def __init__(self, n_in, n_out, c=0.97, iterations=5):
        super().__init__()
        s = 1.0 / math.sqrt(n_in)
        self.weight = torch.nn.Parameter(torch.empty(n_out, n_in).uniform_(-s, s))
        self.bias = torch.nn.Parameter(torch.empty(n_out).uniform_(-s, s))
        self.register_buffer("u", F.normalize(torch.randn(n_out), dim=0))
        self.register_buffer("v", F.normalize(torch.randn(n_in), dim=0))
        self.c, self.iterations = c, iterations

    def forward(self, x):
        if self.training:
            with torch.no_grad():
                for _ in range(self.iterations):
                    self.v = F.normalize(self.weight.t() @ self.u, dim=0)
                    self.u = F.normalize(self.weight @ self.v, dim=0)
        sigma = torch.dot(self.u, self.weight @ self.v)
        w = self.weight * torch.clamp(self.c / sigma, max=1.0)
        return F.linear(x, w, self.bias)


def lipswish(x):
    return x * torch.sigmoid(x) / 1.1


class Block(torch.nn.Module):
    def __init__(self, dim, hidden, activation, log_det):
        super().__init__()
        widths = [dim, *hidden, dim]
        self.layers = torch.nn.ModuleList(SNLinear(widths[i], widths[i + 1]) for i in range(len(widths) - 1))
        self.act = lipswish if activation == "lipswish" else F.elu
        self.log_det = log_det

    def g(self, x):
        h = x
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i + 1 < len(self.layers):
                h = self.act(h)
        return h

    def forward(self, x):
        x = x if x.requires_grad else x.requires_grad_(True)
        g = self.g(x)
        if self.log_det == "exact":
            d = x.shape[1]
            rows = [torch.autograd.grad(g[:, i].sum(), x, create_graph=True)[0] for i in range(d)]
            jac = torch.stack(rows, dim=1)  # [B, D, D], J[b, i, j] = ∂g_i/∂x_j
            eye = torch.eye(d, dtype=x.dtype).expand_as(jac)
            log_det = torch.linalg.slogdet(eye + jac)[1]
        else:
            b, d = x.shape
            v = torch.randn(b, d)
            n = 2 + int(torch.distributions.Geometric(0.5).sample().item())
            coef = lambda k: 1.0 if k <= 2 else 0.5 ** -(k - 2)  # 1 / P(N >= k)
            r, w, series = v, v.clone(), torch.zeros(b)
            for k in range(1, n + 1):
                r = torch.autograd.grad(g, x, r, retain_graph=True)[0]
                series = series + (-1) ** (k + 1) / k * coef(k) * (r * v).sum(1)
                w = w + (-1) ** k * coef(k) * r
            surrogate = (torch.autograd.grad(g, x, w.detach(), create_graph=True)[0] * v).sum(1)
            log_det = series.detach() + surrogate - surrogate.detach()
        return x + g, log_det


def make_case(c):
    torch.manual_seed(0)
    blocks = torch.nn.ModuleList(Block(c["dim"], c["hidden"], c["activation"], c["logDet"]) for _ in range(c["blocks"]))
    blocks.train()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(c["batch"], c["dim"], generator=gen)
    gy = torch.randn(c["batch"], c["dim"], generator=gen)
    gl = torch.randn(c["batch"], generator=gen)

    def run():
        z = x.clone().requires_grad_(True)
        h, total = z, 0
        for blk in blocks:
            h, ld = blk(h)
            total = total + ld
        torch.autograd.backward((h, total), (gy, gl))
        for p in blocks.parameters():
            p.grad = None

    return run


def time_it(fn, min_seconds, rounds):
    fn()  # warm-up
    calls = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_seconds / 4:
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
    return samples[len(samples) // 2]


def main():
    spec = json.loads(sys.argv[1])
    set_threads(spec["threads"])
    out = [time_it(make_case(c), spec["minSeconds"], spec["rounds"]) for c in spec["cases"]]
    print(json.dumps({"torch": torch.__version__, "results": out}))


if __name__ == "__main__":
    main()
