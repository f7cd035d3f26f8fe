"""PyTorch CPU peer for `npm run bench -- spline` (also in the flows suite):
forward + backward of a rational-quadratic neural spline flow, coupling form
(Durkan et al. 2019), written as nflows writes it
(nflows/transforms/splines/rational_quadratic.py and
PiecewiseRationalQuadraticCouplingTransform): each coupling slices x into
halves, runs an nn.Sequential MLP (Linear-ReLU-Linear-ReLU-Linear, last
layer zero-initialized) on the conditioning half, reshapes its output to
[batch, width, 3K - 1] (widths, heights, interior derivatives), pads the
derivatives with the constant that makes the boundary slopes 1, evaluates the
spline on the elements inside [-B, B] (boolean-mask indexing, identity
tails), with softmax/cumsum knots, the searchsorted-by-comparison bin lookup
and gathers, and rebuilds y with torch.cat. The transformed half alternates
between layers. (nflows also divides the width/height logits by
sqrt(hidden); flowvae does not, so neither does this peer.) Loss
Σ y ⊙ wy + Σ logDet ⊙ wl, so backward produces input and every parameter
gradient. Prints JSON {batch: samples/s}.
"""
import json
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from timing import samples_per_second, set_threads

spec = json.loads(sys.argv[1])
threads = spec["threads"]
set_threads(threads)
torch.manual_seed(0)

MIN_BIN_WIDTH = 1e-3
MIN_BIN_HEIGHT = 1e-3
MIN_DERIVATIVE = 1e-3


def searchsorted(bin_locations, inputs, eps=1e-6):
    bin_locations[..., -1] += eps
    return torch.sum(inputs[..., None] >= bin_locations, dim=-1) - 1


def rational_quadratic_spline(inputs, uw, uh, ud, left, right, bottom, top):
    num_bins = uw.shape[-1]
    widths = F.softmax(uw, dim=-1)
    widths = MIN_BIN_WIDTH + (1 - MIN_BIN_WIDTH * num_bins) * widths
    cumwidths = torch.cumsum(widths, dim=-1)
    cumwidths = F.pad(cumwidths, pad=(1, 0), mode="constant", value=0.0)
    cumwidths = (right - left) * cumwidths + left
    cumwidths[..., 0] = left
    cumwidths[..., -1] = right
    widths = cumwidths[..., 1:] - cumwidths[..., :-1]

    derivatives = MIN_DERIVATIVE + F.softplus(ud)

    heights = F.softmax(uh, dim=-1)
    heights = MIN_BIN_HEIGHT + (1 - MIN_BIN_HEIGHT * num_bins) * heights
    cumheights = torch.cumsum(heights, dim=-1)
    cumheights = F.pad(cumheights, pad=(1, 0), mode="constant", value=0.0)
    cumheights = (top - bottom) * cumheights + bottom
    cumheights[..., 0] = bottom
    cumheights[..., -1] = top
    heights = cumheights[..., 1:] - cumheights[..., :-1]

    bin_idx = searchsorted(cumwidths, inputs)[..., None]
    input_cumwidths = cumwidths.gather(-1, bin_idx)[..., 0]
    input_bin_widths = widths.gather(-1, bin_idx)[..., 0]
    input_cumheights = cumheights.gather(-1, bin_idx)[..., 0]
    delta = heights / widths
    input_delta = delta.gather(-1, bin_idx)[..., 0]
    input_derivatives = derivatives.gather(-1, bin_idx)[..., 0]
    input_derivatives_plus_one = derivatives[..., 1:].gather(-1, bin_idx)[..., 0]
    input_heights = heights.gather(-1, bin_idx)[..., 0]

    theta = (inputs - input_cumwidths) / input_bin_widths
    theta_one_minus_theta = theta * (1 - theta)
    numerator = input_heights * (input_delta * theta.pow(2) + input_derivatives * theta_one_minus_theta)
    denominator = input_delta + (input_derivatives + input_derivatives_plus_one - 2 * input_delta) * theta_one_minus_theta
    outputs = input_cumheights + numerator / denominator
    derivative_numerator = input_delta.pow(2) * (
        input_derivatives_plus_one * theta.pow(2)
        + 2 * input_delta * theta_one_minus_theta
        + input_derivatives * (1 - theta).pow(2)
    )
    logabsdet = torch.log(derivative_numerator) - 2 * torch.log(denominator)
    return outputs, logabsdet


def unconstrained_rational_quadratic_spline(inputs, uw, uh, ud, tail_bound):
    inside = (inputs >= -tail_bound) & (inputs <= tail_bound)
    outside = ~inside
    outputs = torch.zeros_like(inputs)
    logabsdet = torch.zeros_like(inputs)
    ud = F.pad(ud, pad=(1, 1))
    constant = math.log(math.exp(1 - MIN_DERIVATIVE) - 1)
    ud[..., 0] = constant
    ud[..., -1] = constant
    outputs[outside] = inputs[outside]
    logabsdet[outside] = 0
    outputs[inside], logabsdet[inside] = rational_quadratic_spline(
        inputs[inside], uw[inside, :], uh[inside, :], ud[inside, :], -tail_bound, tail_bound, -tail_bound, tail_bound
    )
    return outputs, logabsdet


class SplineCoupling(nn.Module):
    def __init__(self, D, hidden, bins, bound, transform_first):
        super().__init__()
        self.half = D // 2
        self.transform_first = transform_first
        cond = D - self.half if transform_first else self.half
        self.width = D - cond
        self.bins = bins
        self.bound = bound
        sizes = [cond] + list(hidden)
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        last = nn.Linear(sizes[-1], self.width * (3 * bins - 1))
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*layers, last)

    def forward(self, x):
        if self.transform_first:
            xb, xa = x[:, : self.half], x[:, self.half :]
        else:
            xa, xb = x[:, : self.half], x[:, self.half :]
        params = self.net(xa).reshape(x.shape[0], self.width, 3 * self.bins - 1)
        uw = params[..., : self.bins]
        uh = params[..., self.bins : 2 * self.bins]
        ud = params[..., 2 * self.bins :]
        yb, ld = unconstrained_rational_quadratic_spline(xb, uw, uh, ud, self.bound)
        y = torch.cat([yb, xa], dim=1) if self.transform_first else torch.cat([xa, yb], dim=1)
        return y, ld.sum(dim=1)


class SplineFlow(nn.Module):
    def __init__(self, D, K, hidden, bins, bound):
        super().__init__()
        self.layers = nn.ModuleList(SplineCoupling(D, hidden, bins, bound, k % 2 == 1) for k in range(K))

    def forward(self, x):
        logdet = torch.zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x)
            logdet = logdet + ld
        return x, logdet


D, K, hidden, bins, bound = spec["dim"], spec["layers"], spec["hidden"], spec["bins"], spec["bound"]
flow = SplineFlow(D, K, hidden, bins, bound)
# The same start as flowvae's benchmark: last layers nudged off zero so the splines are not all the identity.
with torch.no_grad():
    for layer in flow.layers:
        w = layer.net[-1].weight
        w.copy_(0.01 * torch.sin(torch.arange(w.numel(), dtype=torch.float32)).reshape(w.shape))
out = {}
for batch in spec["batches"]:
    x = (1.5 * torch.sin(torch.arange(batch * D, dtype=torch.float32))).reshape(batch, D).requires_grad_(True)
    wy, wl = torch.randn(batch, D), torch.randn(batch)

    def step():
        flow.zero_grad(set_to_none=True)
        x.grad = None
        y, ld = flow(x)
        ((y * wy).sum() + (ld * wl).sum()).backward()

    out[str(batch)] = samples_per_second(step, batch, spec.get("rounds", 5))
print(json.dumps(out))
