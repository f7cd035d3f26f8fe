"""PyTorch CPU peer for `npm run bench -- coupling` (also in the flows suite):
forward + backward of a RealNVP stack (Dinh et al. 2017) on vectors as
PyTorch users write it: each coupling slices x into halves, runs an
nn.Sequential MLP (Linear-ReLU-Linear-ReLU-Linear, last layer zero-initialized)
on the conditioning half, chunks its output into (ŝ, t), s = scale·tanh(ŝ),
y_b = x_b·exp(s) + t, rebuilds y with torch.cat, log|det| = Σ s; the
transformed half alternates between layers. Loss Σ y ⊙ wy + Σ logDet ⊙ wl,
so backward produces input and every parameter gradient.
Prints JSON {batch: samples/s}."""
import json
import sys

import torch
import torch.nn as nn

from timing import samples_per_second, set_threads

spec = json.loads(sys.argv[1])
threads = spec["threads"]
set_threads(threads)
torch.manual_seed(0)


class AffineCoupling(nn.Module):
    def __init__(self, D, hidden, transform_first):
        super().__init__()
        self.half = D // 2
        self.transform_first = transform_first
        cond = D - self.half if transform_first else self.half
        width = D - cond
        sizes = [cond] + list(hidden)
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        last = nn.Linear(sizes[-1], 2 * width)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*layers, last)
        self.scale = nn.Parameter(torch.ones(width))

    def forward(self, x):
        if self.transform_first:
            xb, xa = x[:, : self.half], x[:, self.half :]
        else:
            xa, xb = x[:, : self.half], x[:, self.half :]
        s_hat, t = self.net(xa).chunk(2, dim=1)
        s = self.scale * torch.tanh(s_hat)
        yb = xb * torch.exp(s) + t
        y = torch.cat([yb, xa], dim=1) if self.transform_first else torch.cat([xa, yb], dim=1)
        return y, s.sum(dim=1)


class RealNVP(nn.Module):
    def __init__(self, D, K, hidden):
        super().__init__()
        self.layers = nn.ModuleList(AffineCoupling(D, hidden, k % 2 == 1) for k in range(K))

    def forward(self, x):
        logdet = torch.zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x)
            logdet = logdet + ld
        return x, logdet


D, K, hidden = spec["dim"], spec["layers"], spec["hidden"]
flow = RealNVP(D, K, hidden)
out = {}
for batch in spec["batches"]:
    x = torch.randn(batch, D, requires_grad=True)
    wy, wl = torch.randn(batch, D), torch.randn(batch)

    def step():
        flow.zero_grad(set_to_none=True)
        x.grad = None
        y, ld = flow(x)
        ((y * wy).sum() + (ld * wl).sum()).backward()

    out[str(batch)] = samples_per_second(step, batch, spec.get("rounds", 5))
print(json.dumps(out))
