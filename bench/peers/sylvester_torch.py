"""PyTorch CPU peer for bench/sylvester.ts: a stack of K Sylvester layers
written the way the paper's reference code (riannevdberg/sylvester-flows,
models/VAE.py and models/flows.py) writes it, with autograd:

- R and R-tilde from one full matrix (upper triangle, and the transposed
  lower triangle) plus tanh diagonals (of the raw values clamped to +-8, as
  flowvae does);
- Q by batched Bjorck steps on q / |q|_F (orthogonal), by multiplying the
  Householder matrices I - 2 v v^T (householder), or identity / flip
  (triangular, alternating);
- per layer: amortized parameters through bmm, as in the paper; shared
  parameters through one [B, D] x [D, M] matmul (PyTorch's fast path).

The Bjorck loop stops by flowvae's rule (max |Q^T Q - I| <= tolerance or
maxSteps steps) so both do the same number of steps on the same kind of
matrices. Parameters are one tensor [sets, K*P] in flowvae's layout, as an
encoder head would emit them.

argv[1]: JSON {threads, budget, minSeconds, rounds, cases: [{name, variant,
dim, m, layers, householders, batch, amortized, tolerance, maxSteps}]}.
Prints {name: {"seconds": median seconds per forward+backward, "batch":
batch measured, "steps": Bjorck steps of the last call}}. A case whose
predicted call time at its batch exceeds `budget` seconds is measured at the
largest power-of-two batch that fits (per-row cost is what is compared).
"""
import ctypes
import ctypes.util
import json
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


def make_case(c, batch):
    variant, D, M, K, H = c["variant"], c["dim"], c["m"], c["layers"], c["householders"]
    amortized, tol, max_steps = c["amortized"], c["tolerance"], c["maxSteps"]
    g = torch.Generator().manual_seed(0)
    q_raw = D * M if variant == "orthogonal" else H * D if variant == "householder" else 0
    per_layer = M * M + 3 * M + q_raw
    sets = batch if amortized else 1
    params = torch.empty(sets, K * per_layer)
    off = K * (M * M + 3 * M)
    with torch.no_grad():
        params.uniform_(-0.01, 0.01, generator=g)
        if variant == "orthogonal":
            raw = torch.randn(sets * K, D, M, generator=g)
            if not amortized:  # flowvae's shared initialization: orthonormal columns
                raw = torch.linalg.qr(raw)[0]
            params[:, off:] = raw.reshape(sets, K * D * M)
        elif variant == "householder":
            params[:, off:] = torch.randn(sets, K * H * D, generator=g)
    params.requires_grad_(True)
    x = torch.randn(batch, D, generator=g)
    gy = torch.randn(batch, D, generator=g)
    gl = torch.randn(batch, generator=g)
    eye_m = torch.eye(M).unsqueeze(0)
    eye_d = torch.eye(D).unsqueeze(0)
    triu_mask = torch.triu(torch.ones(M, M), diagonal=1).unsqueeze(0).unsqueeze(0)
    flip_idx = torch.arange(D - 1, -1, -1).long()
    steps_taken = [0]

    def orthogonalize(q):  # [n, D*M] -> [n, D, M], as batch_construct_orthogonal
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

    def householder(v):  # [n, H*D] -> [n, D, D], as the paper's batch_construct_orthogonal
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
        r1 = s * triu_mask + torch.diag_embed(d1)
        r2 = s.transpose(3, 2) * triu_mask + torch.diag_embed(d2)
        qks = None
        if variant == "orthogonal":
            qks = orthogonalize(params[:, off:].reshape(n * K, D * M)).view(n, K, D, M).unbind(1)
        elif variant == "householder":
            qks = householder(params[:, off:].reshape(n * K, H * D)).view(n, K, D, D).unbind(1)
        r1s, r2s, bs, d1s, d2s = r1.unbind(1), r2.unbind(1), b.unbind(1), d1.unbind(1), d2.unbind(1)
        log_det = 0.0
        if not amortized:
            z = x
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
        else:
            z = x.unsqueeze(1)
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
            z = z.squeeze(1)
        loss = (z * gy).sum() + (log_det * gl).sum()
        params.grad = None
        loss.backward()

    return run, steps_taken


def time_it(fn, estimate, min_seconds, rounds):
    """Median seconds per call over `rounds` rounds of enough calls to last min_seconds (after one warm-up)."""
    fn()
    calls = max(1, int(min_seconds / max(estimate, 1e-9) + 0.5))
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - t0) / calls)
    samples.sort()
    return samples[len(samples) // 2]


results = {}
budget = float(spec["budget"])
for case in spec["cases"]:
    # Two probes fit time = fixed + per_row * rows (shared cases have a fixed Bjorck cost).
    target = case["batch"]
    probes = []
    for b in sorted({min(target, 8), min(target, 64)}):
        run, steps = make_case(case, b)
        run()
        t0 = time.perf_counter()
        run()
        probes.append((b, time.perf_counter() - t0))
        if probes[-1][1] > budget:
            break
    (b1, t1), (b2, t2) = probes[0], probes[-1]
    if t2 > budget:
        # Even a few rows exceed the budget (e.g. threads waiting on a busy machine): report the probe.
        results[case["name"]] = {"seconds": t2, "batch": b2, "steps": steps[0]}
        continue
    per_row = max(t2 - t1, 0.0) / (b2 - b1) if b2 > b1 else t1 / b1
    batch = target
    while batch > b1 and t1 + per_row * (batch - b1) > budget:
        batch //= 2
    run, steps = make_case(case, batch)
    t0 = time.perf_counter()
    run()  # warm-up at the measured size, also the estimate
    estimate = time.perf_counter() - t0
    seconds = time_it(run, estimate, spec["minSeconds"], spec["rounds"])
    results[case["name"]] = {"seconds": seconds, "batch": batch, "steps": steps[0]}
print(json.dumps(results))
