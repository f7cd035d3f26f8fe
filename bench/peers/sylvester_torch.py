"""PyTorch CPU peer for bench/sylvester.ts: a stack of K Sylvester layers
written the way the paper's reference code (riannevdberg/sylvester-flows)
writes it, with autograd: R and R-tilde from one full matrix plus tanh
diagonals, Q by batched Bjorck steps (orthogonal), by a product of
Householder matrices (householder), or identity/flip (triangular), then
per layer two bmm's, tanh and the log-det sum. The same stopping rule as
flowvae's kernel (max |Q^T Q - I| <= tolerance, at most max_steps steps).

argv[1]: JSON spec {variant, dim, m, layers, householders, batch, amortized,
threads, tolerance, maxSteps, minSeconds, rounds}. Prints JSON
{"seconds": median seconds per forward+backward, "steps": Bjorck steps}.
"""
import json
import sys
import time

import torch

spec = json.loads(sys.argv[1])
threads = int(spec["threads"])
torch.set_num_threads(threads)
try:  # Debian's torch calls OpenBLAS, whose pool torch.set_num_threads does not reach
    import ctypes
    import ctypes.util

    for name in ("openblas", "openblas64", "openblasp"):
        path = ctypes.util.find_library(name)
        if path:
            lib = ctypes.CDLL(path)
            for fn in ("openblas_set_num_threads", "openblas_set_num_threads64_"):
                if hasattr(lib, fn):
                    getattr(lib, fn)(threads)
except OSError:
    pass

variant = spec["variant"]
D, M, K, H = spec["dim"], spec["m"], spec["layers"], spec["householders"]
B = spec["batch"]
amortized = spec["amortized"]
tol = spec["tolerance"]
max_steps = spec["maxSteps"]
torch.manual_seed(0)

q_raw_per_layer = D * M if variant == "orthogonal" else H * D if variant == "householder" else 0
per_layer = M * M + 3 * M + q_raw_per_layer
sets = B if amortized else 1

# One parameter tensor [sets, K*P] laid out like flowvae's (kind-major), as an encoder head would emit it.
params = torch.empty(sets, K * per_layer)
with torch.no_grad():
    params.uniform_(-0.01, 0.01)
    off = K * (M * M + 3 * M)
    if variant == "orthogonal":
        params[:, off:] = torch.randn(sets, K * D * M)
    elif variant == "householder":
        params[:, off:] = torch.randn(sets, K * H * D)
params.requires_grad_(True)
x = torch.randn(B, D)
gy = torch.randn(B, D)
gl = torch.randn(B)

eye_m = torch.eye(M).unsqueeze(0)
eye_d = torch.eye(D).unsqueeze(0)
triu_mask = torch.triu(torch.ones(M, M), diagonal=1).unsqueeze(0)
flip_idx = torch.arange(D - 1, -1, -1).long()
steps_taken = [0]


def orthogonalize(q):  # q: [n, D*M] -> [n, D, M], as batch_construct_orthogonal
    norm = torch.norm(q, p=2, dim=1, keepdim=True)
    amat = torch.div(q, norm).view(-1, D, M)
    steps = 0
    while True:
        with torch.no_grad():
            test = torch.bmm(amat.transpose(2, 1), amat) - eye_m
            if test.abs().max().item() <= tol or steps == max_steps:
                break
        tmp = torch.bmm(amat.transpose(2, 1), amat)
        tmp = eye_m - tmp
        tmp = eye_m + 0.5 * tmp
        amat = torch.bmm(amat, tmp)
        steps += 1
    steps_taken[0] = steps
    return amat


def householder(v):  # v: [n, H*D] -> [n, D, D], as the paper's batch_construct_orthogonal
    v = v.reshape(-1, D)
    v = v / torch.norm(v, p=2, dim=1, keepdim=True)
    amat = eye_d - 2 * torch.bmm(v.unsqueeze(2), v.unsqueeze(1))
    amat = amat.view(-1, H, D, D)
    tmp = amat[:, 0]
    for k in range(1, H):
        tmp = torch.bmm(amat[:, k], tmp)
    return tmp


def run():
    n = params.shape[0]
    s = params[:, : K * M * M].reshape(n, K, M, M)
    d1 = torch.tanh(torch.clamp(params[:, K * M * M : K * M * M + K * M].reshape(n, K, M), -8, 8))
    d2 = torch.tanh(torch.clamp(params[:, K * M * M + K * M : K * M * M + 2 * K * M].reshape(n, K, M), -8, 8))
    b = params[:, K * M * M + 2 * K * M : K * M * M + 3 * K * M].reshape(n, K, 1, M)
    r1 = s * triu_mask.unsqueeze(0) + torch.diag_embed(d1)
    r2 = s.transpose(3, 2) * triu_mask.unsqueeze(0) + torch.diag_embed(d2)
    if variant == "orthogonal":
        qs = orthogonalize(params[:, K * (M * M + 3 * M) :].reshape(n * K, D * M)).view(n, K, D, M)
    elif variant == "householder":
        qs = householder(params[:, K * (M * M + 3 * M) :].reshape(n * K, H * D)).view(n, K, D, D)
    r1s, r2s, bs, d1s, d2s = r1.unbind(1), r2.unbind(1), b.unbind(1), d1.unbind(1), d2.unbind(1)
    qks = qs.unbind(1) if variant != "triangular" else None
    if not amortized:
        # Shared parameters: one [B, D] x [D, M] matrix product per step (the fast way in PyTorch).
        z = x
        log_det = 0.0
        for k in range(K):
            r1k, r2k, bk = r1s[k][0], r2s[k][0], bs[k][0, 0]
            if variant == "triangular":
                z_per = z[:, flip_idx] if k % 2 == 1 else z
                a = z_per @ r2k.t() + bk
                out = torch.tanh(a) @ r1k.t()
                z = z + (out[:, flip_idx] if k % 2 == 1 else out)
            else:
                qk = qks[k][0]
                a = z @ (qk @ r2k.t()) + bk
                z = torch.tanh(a) @ (qk @ r1k).t() + z
            diag_j = (1 - torch.tanh(a) ** 2) * (d1s[k][0] * d2s[k][0]) + 1.0
            log_det = log_det + diag_j.abs().log().sum(-1)
        loss = (z * gy).sum() + (log_det * gl).sum()
        params.grad = None
        loss.backward()
        return
    z = x.unsqueeze(1)
    log_det = 0.0
    for k in range(K):
        r1k, r2k, bk = r1s[k], r2s[k], bs[k]
        if variant == "triangular":
            z_per = z[:, :, flip_idx] if k % 2 == 1 else z
            r2qzb = torch.bmm(z_per, r2k.transpose(2, 1)) + bk
            out = torch.bmm(torch.tanh(r2qzb), r1k.transpose(2, 1))
            if k % 2 == 1:
                out = out[:, :, flip_idx]
            z = z + out
        else:
            qk = qks[k]
            qr2 = torch.bmm(qk, r2k.transpose(2, 1))
            qr1 = torch.bmm(qk, r1k)
            r2qzb = torch.bmm(z, qr2) + bk
            z = torch.bmm(torch.tanh(r2qzb), qr1.transpose(2, 1)) + z
        diag_j = d1s[k] * d2s[k]
        diag_j = (1 - torch.tanh(r2qzb).squeeze(1) ** 2) * diag_j + 1.0
        log_det = log_det + diag_j.abs().log().sum(-1)
    loss = (z.squeeze(1) * gy).sum() + (log_det * gl).sum()
    params.grad = None
    loss.backward()


def timeit(fn, min_seconds, rounds):
    fn()
    calls = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_seconds / 4 or calls > 1 << 16:
            calls = max(1, int(calls * min_seconds / max(dt, 1e-9) + 0.999))
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


seconds = timeit(run, spec.get("minSeconds", 0.2), spec.get("rounds", 5))
print(json.dumps({"seconds": seconds, "steps": steps_taken[0]}))
