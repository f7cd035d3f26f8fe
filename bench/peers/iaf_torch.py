"""PyTorch CPU peer for `npm run bench -- autoregressive`: forward + backward
of an IAF stack (Kingma et al. 2016) as PyTorch users write it: MADE layers
are nn.Linear with the weight multiplied by a fixed mask on each call, ELU
between layers, the context added to the first hidden layer, gates
σ = sigmoid(s), z ← σ z + (1 − σ) m, log|det| = Σ logsigmoid(s), the MADE
orderings alternating natural/reversed between steps. Prints JSON
{batch: samples/s}."""
import json
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from timing import samples_per_second, set_threads

spec = json.loads(sys.argv[1])
threads = spec["threads"]
set_threads(threads)
torch.manual_seed(0)


class MaskedLinear(nn.Linear):
    def __init__(self, n_in, n_out, mask):
        super().__init__(n_in, n_out)
        self.register_buffer("mask", mask)

    def forward(self, x):
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    def __init__(self, D, hidden, C, reverse):
        super().__init__()
        deg = torch.arange(1, D + 1)
        if reverse:
            deg = deg.flip(0)
        degrees, layers = [deg], []
        for h in hidden:
            lo = min(int(degrees[-1].min()), D - 1)
            degrees.append(torch.sort(torch.randint(lo, D, (h,)))[0])
        for a, b in zip(degrees[:-1], degrees[1:]):
            layers.append(MaskedLinear(len(a), len(b), (b[:, None] >= a[None, :]).float()))
        out = torch.cat([deg, deg])
        layers.append(MaskedLinear(len(degrees[-1]), 2 * D, (out[:, None] > degrees[-1][None, :]).float()))
        self.layers = nn.ModuleList(layers)
        self.context = nn.Linear(C, hidden[0], bias=False) if C > 0 else None

    def forward(self, x, h):
        a = self.layers[0](x)
        if self.context is not None:
            a = a + self.context(h)
        for layer in self.layers[1:]:
            a = layer(F.elu(a))
        return a.chunk(2, dim=1)


class IAF(nn.Module):
    def __init__(self, D, K, hidden, C):
        super().__init__()
        self.mades = nn.ModuleList(MADE(D, hidden, C, k % 2 == 1) for k in range(K))

    def forward(self, z, h):
        logdet = torch.zeros(z.shape[0])
        for made in self.mades:
            m, s = made(z, h)
            sigma = torch.sigmoid(s)
            z = sigma * z + (1 - sigma) * m
            logdet = logdet + F.logsigmoid(s).sum(1)
        return z, logdet


D, K, hidden, C = spec["dim"], spec["layers"], spec["hidden"], spec["contextDim"]
flow = IAF(D, K, hidden, C)
out = {}
for batch in spec["batches"]:
    z = torch.randn(batch, D, requires_grad=True)
    h = torch.randn(batch, C, requires_grad=True)
    wy, wl = torch.randn(batch, D), torch.randn(batch)

    def step():
        flow.zero_grad(set_to_none=True)
        z.grad = None
        h.grad = None
        y, ld = flow(z, h)
        ((y * wy).sum() + (ld * wl).sum()).backward()

    out[str(batch)] = samples_per_second(step, batch, spec.get("rounds", 5))
print(json.dumps(out))
