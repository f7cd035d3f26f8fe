"""PyTorch twin of flowvae's MLP VAE, for the training-parity suite
(`npm run quality -- --suite parity`) and the trajectory recordings
(bench/parity/record-trajectory.sh).

Written the way PyTorch users write it: nn.Linear defaults, torch.optim.Adam,
BCE-with-logits, torch.randn noise, a shuffled DataLoader-style loop. Where
flowvae documents a choice that differs from a PyTorch default, the twin
mirrors it so that the comparison isolates the implementation:
- amortized flow heads start at 0.1x nn.Linear's default scale;
- IAF: MADE with one hidden layer of 320 ELU units, random hidden degrees,
  natural/reversed orderings alternating, the encoder context (width = latent)
  into the hidden layer, output layer at 0.1x scale, gate bias +3;
- orthogonal Sylvester: Q by Bjorck steps from A/||A||_F until
  max|Q^T Q - I| <= 1e-5 (at most 100 steps), R_ii = tanh(clamp(rho, -8, 8)),
  R and R~ sharing one off-diagonal matrix as in the paper's code.

Modes (argument: one JSON object):
  {"mode": "train", ...}  the parity protocol; prints one JSON line per epoch
                          and a final JSON line with test ELBO and NLL.
  {"mode": "replay", "file": ...}  replays a flowvae trajectory file (initial
                          weights, batches and noise from flowvae) and writes the
                          per-step losses and final parameters.
"""
import gzip
import json
import math
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from timing import set_threads

LOG2PI = math.log(2 * math.pi)


def scaled_linear(i, o, scale=1.0):
    lin = nn.Linear(i, o)
    if scale != 1.0:
        with torch.no_grad():
            lin.weight.mul_(scale)
            lin.bias.mul_(scale)
    return lin


# ---------------------------------------------------------------------------
# Posteriors: each maps (z0, encoder features h) to (z_K, sum of log|det J|).


class Planar(nn.Module):
    def __init__(self, D, K, H):
        super().__init__()
        self.D, self.K = D, K
        self.head = scaled_linear(H, K * (2 * D + 1), 0.1)

    def forward(self, z, h):
        D, K = self.D, self.K
        p = self.head(h)
        u, w, b = p[:, : K * D].view(-1, K, D), p[:, K * D : 2 * K * D].view(-1, K, D), p[:, 2 * K * D :]
        logdet = torch.zeros(z.shape[0])
        for uk, wk, bk in zip(u.unbind(1), w.unbind(1), b.unbind(1)):
            wu = (wk * uk).sum(1, keepdim=True)
            uhat = uk + (F.softplus(wu) - 1 - wu) * wk / (wk * wk).sum(1, keepdim=True)
            t = torch.tanh((wk * z).sum(1, keepdim=True) + bk.unsqueeze(1))
            z = z + uhat * t
            logdet = logdet + torch.log(torch.abs(1 + ((1 - t * t) * wk * uhat).sum(1)))
        return z, logdet


class Radial(nn.Module):
    def __init__(self, D, K, H):
        super().__init__()
        self.D, self.K = D, K
        self.head = scaled_linear(H, K * (D + 2), 0.1)

    def forward(self, z, h):
        D, K = self.D, self.K
        p = self.head(h)
        z0, a_raw, b_raw = p[:, : K * D].view(-1, K, D), p[:, K * D : K * D + K], p[:, K * D + K :]
        logdet = torch.zeros(z.shape[0])
        for k in range(K):
            alpha = F.softplus(a_raw[:, k : k + 1])
            beta = -alpha + F.softplus(b_raw[:, k : k + 1])
            diff = z - z0[:, k]
            r = diff.norm(dim=1, keepdim=True)
            hh = 1 / (alpha + r)
            bh = beta * hh
            z = z + bh * diff
            logdet = logdet + ((D - 1) * torch.log1p(bh) + torch.log1p(bh - beta * hh * hh * r)).squeeze(1)
        return z, logdet


class MaskedLinear(nn.Linear):
    def __init__(self, i, o, mask, scale=1.0):
        super().__init__(i, o)
        if scale != 1.0:
            with torch.no_grad():
                self.weight.mul_(scale)
                self.bias.mul_(scale)
        self.register_buffer("mask", mask)

    def forward(self, x):
        return F.linear(x, self.weight * self.mask, self.bias)


class IAF(nn.Module):
    def __init__(self, D, K, H, hidden=320, gate_bias=3.0, gen=None):
        super().__init__()
        self.D = D
        self.context = nn.Linear(H, D)
        self.steps = nn.ModuleList()
        for k in range(K):
            deg_in = torch.arange(1, D + 1) if k % 2 == 0 else torch.arange(D, 0, -1)
            deg_h = torch.randint(1, D, (hidden,), generator=gen).sort().values
            m1 = (deg_h[:, None] >= deg_in[None, :]).float()
            m2 = (deg_in.repeat(2)[:, None] > deg_h[None, :]).float()
            l2 = MaskedLinear(hidden, 2 * D, m2, 0.1)
            with torch.no_grad():
                l2.bias[D:] += gate_bias
            self.steps.append(nn.ModuleDict({"l1": MaskedLinear(D, hidden, m1), "ctx": nn.Linear(D, hidden, bias=False), "l2": l2}))

    def forward(self, z, h):
        c = self.context(h)
        logdet = 0
        for st in self.steps:
            ms = st["l2"](F.elu(st["l1"](z) + st["ctx"](c)))
            m, s = ms[:, : self.D], ms[:, self.D :]
            sig = torch.sigmoid(s)
            z = sig * z + (1 - sig) * m
            logdet = logdet + F.logsigmoid(s).sum(1)
        return z, logdet


class SylvesterOrthogonal(nn.Module):
    def __init__(self, D, K, H, M):
        super().__init__()
        self.D, self.K, self.M = D, K, M
        self.head = scaled_linear(H, K * (M * M + 3 * M + D * M), 0.1)
        self.register_buffer("triu", torch.triu(torch.ones(M, M), diagonal=1))
        self.register_buffer("eye", torch.eye(M))

    def orthogonalize(self, a):
        q = a / a.flatten(1).norm(dim=1)[:, None, None]
        for _ in range(100):
            if (q.transpose(1, 2) @ q - self.eye).abs().amax().item() <= 1e-5:
                break
            q = q @ (1.5 * self.eye - 0.5 * (q.transpose(1, 2) @ q))
        return q

    def forward(self, z, h, one_example=False):
        B, D, K, M = z.shape[0], self.D, self.K, self.M
        # Importance samples of one example share its parameters: orthogonalize once.
        p = self.head(h[:1]).expand(B, -1) if one_example else self.head(h)
        o = 0
        full = p[:, o : o + K * M * M].view(B, K, M, M); o += K * M * M
        d1 = torch.tanh(p[:, o : o + K * M].view(B, K, M).clamp(-8, 8)); o += K * M
        d2 = torch.tanh(p[:, o : o + K * M].view(B, K, M).clamp(-8, 8)); o += K * M
        b = p[:, o : o + K * M].view(B, K, M); o += K * M
        if one_example:
            q = self.orthogonalize(p[:1, o : o + K * D * M].reshape(K, D, M)).view(1, K, D, M).expand(B, -1, -1, -1)
        else:
            q = self.orthogonalize(p[:, o : o + K * D * M].reshape(B * K, D, M)).view(B, K, D, M)
        r1 = full * self.triu + torch.diag_embed(d1)
        r2 = full.transpose(2, 3) * self.triu + torch.diag_embed(d2)
        logdet = 0
        for k in range(K):
            qk = q[:, k]
            a = torch.bmm(torch.bmm(z.unsqueeze(1), qk), r2[:, k].transpose(1, 2)).squeeze(1) + b[:, k]
            t = torch.tanh(a)
            z = z + torch.bmm(torch.bmm(t.unsqueeze(1), r1[:, k].transpose(1, 2)), qk.transpose(1, 2)).squeeze(1)
            logdet = logdet + torch.log(torch.abs(1 + (1 - t * t) * d1[:, k] * d2[:, k])).sum(1)
        return z, logdet


def make_flow(name, D, H, gen):
    if name == "planar":
        return Planar(D, 16, H)
    if name == "radial":
        return Radial(D, 16, H)
    if name == "iaf":
        return IAF(D, 4, H, gen=gen)
    if name == "sylvester-orthogonal":
        return SylvesterOrthogonal(D, 16, H, 20)
    raise ValueError(f"unknown posterior {name}")


class VAE(nn.Module):
    """784-300-300-40 ReLU encoder and decoder, Bernoulli likelihood."""

    def __init__(self, posterior, X=784, H=300, D=40, gen=None):
        super().__init__()
        self.D = D
        self.encoder = nn.Sequential(nn.Linear(X, H), nn.ReLU(), nn.Linear(H, H), nn.ReLU())
        self.mu, self.logvar = nn.Linear(H, D), nn.Linear(H, D)
        self.flow = None if posterior == "diagonal" else make_flow(posterior, D, H, gen)
        self.decoder = nn.Sequential(nn.Linear(D, H), nn.ReLU(), nn.Linear(H, H), nn.ReLU(), nn.Linear(H, X))

    def terms(self, x, eps, one_example=False):
        """Per-example log p(x|z_K), KL term (closed form without a flow, else the
        single-sample estimate) and the importance log-weight."""
        h = self.encoder(x)
        mu, lv = self.mu(h), self.logvar(h)
        z0 = mu + torch.exp(0.5 * lv) * eps
        logq0 = -0.5 * (LOG2PI + lv + eps * eps).sum(1)
        if self.flow is None:
            zk, logdet = z0, 0
        elif one_example and isinstance(self.flow, SylvesterOrthogonal):
            zk, logdet = self.flow(z0, h, one_example=True)
        else:
            zk, logdet = self.flow(z0, h)
        logpz = -0.5 * (LOG2PI + zk * zk).sum(1)
        rec = -F.binary_cross_entropy_with_logits(self.decoder(zk), x, reduction="none").sum(1)
        if self.flow is None:
            kl = 0.5 * (mu * mu + lv.exp() - 1 - lv).sum(1)
        else:
            kl = logq0 - logdet - logpz
        logw = rec + logpz - logq0 + logdet
        return rec, kl, logw


# ---------------------------------------------------------------------------
# Data: the bundled MNIST subset (IDX files), binarized once at 0.5.


def read_idx_images(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    _, n, rows, cols = struct.unpack(">IIII", raw[:16])
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, rows * cols)


def parity_data(data_dir, n_val):
    train = read_idx_images(f"{data_dir}/train-images-idx3-ubyte.gz")
    test = read_idx_images(f"{data_dir}/t10k-images-idx3-ubyte.gz")
    # Grey levels k/255 compared with 0.5 exactly as flowvae does (float32 k/255 > 0.5).
    binar = lambda a: ((a.astype(np.float32) / np.float32(255)) > 0.5).astype(np.float32)
    train, test = binar(train), binar(test)
    return torch.from_numpy(train[:-n_val]), torch.from_numpy(train[-n_val:]), torch.from_numpy(test)


@torch.no_grad()
def elbo(model, x, batch=500):
    total = 0.0
    for s in range(0, x.shape[0], batch):
        xb = x[s : s + batch]
        rec, kl, _ = model.terms(xb, torch.randn(xb.shape[0], model.D))
        total += (rec - kl).sum().item()
    return total / x.shape[0]


@torch.no_grad()
def nll(model, x, samples, chunk=500):
    out = []
    for i in range(x.shape[0]):
        xs = x[i : i + 1].expand(chunk, -1)
        logws = []
        for done in range(0, samples, chunk):
            m = min(chunk, samples - done)
            _, _, logw = model.terms(xs[:m], torch.randn(m, model.D), one_example=True)
            logws.append(logw)
        lw = torch.cat(logws).double()
        out.append(-(torch.logsumexp(lw, 0) - math.log(samples)).item())
    return float(np.mean(out))


def train(spec):
    set_threads(spec.get("threads", 1))
    torch.manual_seed(spec["seed"])
    gen = torch.Generator().manual_seed(spec["seed"])
    xtr, xval, xte = parity_data(spec["data"], spec.get("validation", 800))
    model = VAE(spec["posterior"], gen=gen)
    opt = torch.optim.Adam(model.parameters(), lr=spec.get("lr", 1e-3))
    epochs, batch, warmup = spec["epochs"], spec.get("batch", 100), spec.get("warmup", 10)
    best, best_state = -math.inf, None
    n = xtr.shape[0]
    for epoch in range(1, epochs + 1):
        beta = min(1.0, epoch / warmup) if warmup > 0 else 1.0
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n)
        rec_sum = kl_sum = 0.0
        for s in range(0, n, batch):
            xb = xtr[perm[s : s + batch]]
            rec, kl, _ = model.terms(xb, torch.randn(xb.shape[0], model.D))
            loss = (-rec + beta * kl).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec_sum += rec.sum().item()
            kl_sum += kl.sum().item()
        seconds = time.perf_counter() - t0
        model.eval()
        val = elbo(model, xval)
        is_best = val > best
        if is_best:
            best = val
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        print(json.dumps({"epoch": epoch, "beta": beta, "train": (rec_sum - kl_sum) / n, "validation": val,
                          "best": is_best, "seconds": seconds}), flush=True)
    model.load_state_dict(best_state)
    t0 = time.perf_counter()
    test_elbo = elbo(model, xte)
    n_nll = spec.get("nllExamples", 0) or xte.shape[0]
    test_nll = nll(model, xte[:n_nll], spec.get("samples", 1000))
    print(json.dumps({"final": True, "testElbo": test_elbo, "testNll": test_nll, "nllExamples": n_nll,
                      "nllSeconds": time.perf_counter() - t0}), flush=True)


# ---------------------------------------------------------------------------
# Replay of a flowvae trajectory file.


def load_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    out = {}
    for name, v in header.items():
        if name == "__metadata__":
            continue
        begin, end = v["data_offsets"]
        dtype = {"F32": np.float32, "F64": np.float64}[v["dtype"]]
        out[name] = np.frombuffer(data[begin:end], dtype=dtype).reshape(v["shape"]).copy()
    return out, header.get("__metadata__", {})


class SmallVAE(nn.Module):
    """The regression-test model: one hidden layer each way, diagonal posterior."""

    def __init__(self, X, H, D):
        super().__init__()
        self.D = D
        self.encoder = nn.Sequential(nn.Linear(X, H), nn.ReLU())
        self.mu, self.logvar = nn.Linear(H, D), nn.Linear(H, D)
        self.flow = None
        self.decoder = nn.Sequential(nn.Linear(D, H), nn.ReLU(), nn.Linear(H, X))

    terms = VAE.terms


# flowvae parameter names -> twin modules
def named_linears(model):
    net = lambda seq: {f"{i}": m for i, m in enumerate(seq) if isinstance(m, nn.Linear)}
    out = {f"encoder.net.{k}": m for k, m in net(model.encoder).items()}
    out["encoder.mu"], out["encoder.logvar"] = model.mu, model.logvar
    out.update({f"decoder.net.{k}": m for k, m in net(model.decoder).items()})
    return out


def replay(spec):
    set_threads(1)
    T, meta = load_safetensors(spec["file"])
    if meta.get("dtype") == "float64":
        torch.set_default_dtype(torch.float64)
    X, H, D = (int(meta[k]) for k in ("inputDim", "hidden", "latentDim"))
    model = SmallVAE(X, H, D) if meta.get("model") == "small" else VAE("diagonal", X, H, D)
    linears = named_linears(model)
    with torch.no_grad():
        for name, lin in linears.items():
            lin.weight.copy_(torch.from_numpy(T[f"init.{name}.weight"]))
            lin.bias.copy_(torch.from_numpy(T[f"init.{name}.bias"]))
    opt = torch.optim.Adam(model.parameters(), lr=float(meta.get("lr", 1e-3)))
    x, idx, eps, beta = torch.from_numpy(T["x"]), torch.from_numpy(T["idx"]).long(), torch.from_numpy(T["eps"]), torch.from_numpy(T["beta"])
    losses = []
    for s in range(idx.shape[0]):
        rec, kl, _ = model.terms(x[idx[s]], eps[s])
        loss = (-rec + beta[s].item() * kl).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append((-(rec - kl).mean()).item())
    result = {"losses": losses, "parameters": {}}
    for name, lin in linears.items():
        result["parameters"][f"{name}.weight"] = lin.weight.detach().flatten().tolist()
        result["parameters"][f"{name}.bias"] = lin.bias.detach().flatten().tolist()
    json.dump(result, open(spec["out"], "w"))


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    {"train": train, "replay": replay}[spec["mode"]](spec)
