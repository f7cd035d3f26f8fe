"""PyTorch CPU peer for `npm run bench -- train`: one training epoch of the same
VAE (MLP 784-300-300-40, ReLU; amortized planar/radial/IAF-free posteriors as
named), same batch size, same thread count, written the way PyTorch users write
it. Also times the epoch's matrix products alone through numpy (OpenBLAS): the
GEMM-only ceiling. Prints JSON."""
import json
import math
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

spec = json.loads(sys.argv[1])
threads = spec["threads"]
torch.set_num_threads(threads)
try:
    import ctypes, glob
    for lib in glob.glob("/usr/lib/x86_64-linux-gnu/libopenblas*.so*"):
        ctypes.CDLL(lib).openblas_set_num_threads(threads)
        break
except Exception:
    pass
torch.manual_seed(0)


class Planar(nn.Module):
    """Amortized planar stack (Rezende & Mohamed 2015) with the u-hat reparametrization."""

    def __init__(self, D, K):
        super().__init__()
        self.D, self.K = D, K
        self.size = K * (2 * D + 1)

    def forward(self, z, p):
        D, K = self.D, self.K
        u, w, b = p[:, : K * D].view(-1, K, D), p[:, K * D : 2 * K * D].view(-1, K, D), p[:, 2 * K * D :]
        logdet = torch.zeros(z.shape[0])
        for uk, wk, bk in zip(u.unbind(1), w.unbind(1), b.unbind(1)):
            wu = (wk * uk).sum(1, keepdim=True)
            uhat = uk + (-1 + F.softplus(wu) - wu) * wk / (wk * wk).sum(1, keepdim=True)
            a = (wk * z).sum(1, keepdim=True) + bk.unsqueeze(1)
            h = torch.tanh(a)
            z = z + uhat * h
            psi = (1 - h * h) * wk
            logdet = logdet + torch.log(torch.abs(1 + (psi * uhat).sum(1)))
        return z, logdet


class VAE(nn.Module):
    def __init__(self, flow, D=40, K=16, H=300, X=784):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(X, H), nn.ReLU(), nn.Linear(H, H), nn.ReLU())
        self.mu, self.lv = nn.Linear(H, D), nn.Linear(H, D)
        self.flow = Planar(D, K) if flow == "planar" else None
        self.fh = nn.Linear(H, self.flow.size) if self.flow else None
        self.dec = nn.Sequential(nn.Linear(D, H), nn.ReLU(), nn.Linear(H, H), nn.ReLU(), nn.Linear(H, X))

    def loss(self, x):
        h = self.enc(x)
        mu, lv = self.mu(h), self.lv(h)
        eps = torch.randn_like(mu)
        z0 = mu + torch.exp(0.5 * lv) * eps
        logq = (-0.5 * (math.log(2 * math.pi) + lv + eps * eps)).sum(1)
        if self.flow:
            zk, logdet = self.flow(z0, self.fh(h))
        else:
            zk, logdet = z0, 0
        logpz = (-0.5 * (math.log(2 * math.pi) + zk * zk)).sum(1)
        rec = -F.binary_cross_entropy_with_logits(self.dec(zk), x, reduction="none").sum(1)
        return -(rec + logpz - logq + logdet).mean()


def torch_epoch(flow, data, batch, reps):
    model = VAE(flow)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.from_numpy(data)
    n = x.shape[0]
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for s in range(0, n, batch):
            opt.zero_grad(set_to_none=True)
            loss = model.loss(x[s : s + batch])
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    return n / sorted(times)[len(times) // 2]


def gemm_ceiling(flow, n, batch, reps, D=40, K=16, H=300, X=784):
    """Examples/s if an epoch were only its matrix products (forward, dX, dW for every layer)."""
    layers = [(X, H), (H, H), (H, D), (H, D), (D, H), (H, H), (H, X)]
    if flow == "planar":
        layers.append((H, K * (2 * D + 1)))
    rng = np.random.default_rng(0)
    mats = [(rng.standard_normal((batch, i), dtype=np.float32), rng.standard_normal((o, i), dtype=np.float32),
             rng.standard_normal((batch, o), dtype=np.float32)) for i, o in layers]
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(n // batch):
            for xm, w, dy in mats:
                xm @ w.T
                dy @ w
                dy.T @ xm
        times.append(time.perf_counter() - t0)
    return n / sorted(times)[len(times) // 2]


n, batch, reps = spec["n"], spec["batch"], spec.get("reps", 3)
data = (np.random.default_rng(1).random((n, 784)) < 0.13).astype(np.float32)
out = {}
for flow in spec["models"]:
    out[flow] = {"torch": torch_epoch(flow, data, batch, reps), "gemm": gemm_ceiling(flow, n, batch, reps)}
print(json.dumps(out))
