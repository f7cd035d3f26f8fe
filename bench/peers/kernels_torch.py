"""PyTorch peer for bench/kernels.ts: the same elementwise and Adam cases, float32.

argv[1] is a JSON spec {threads, minSeconds, rounds, cases: [{name, op, activation?, n, options?}]};
prints {"seconds": {name: median seconds per call}, "notes": {name: configuration used}}.
Each case is written as PyTorch users write it, in its fastest form here: out= variants
(no allocation) for activations, the aten backward kernels autograd calls, and
torch.optim.Adam/AdamW with clip_grad_norm_, foreach on and off (the faster is kept;
fused=True is CUDA-only in 1.13).
"""
import json
import sys
import time

import torch


def time_it(fn, min_seconds, rounds):
    fn()
    calls = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_seconds / 4 or calls > 1 << 20:
            calls = max(1, int(calls * min_seconds / max(dt, 1e-9)) + 1)
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


def forward_fn(activation, x, y, alpha):
    ops = {
        "relu": lambda: torch.clamp_min(x, 0.0, out=y),
        "tanh": lambda: torch.tanh(x, out=y),
        "sigmoid": lambda: torch.sigmoid(x, out=y),
        "softplus": lambda: torch._C._nn.softplus(x, 1.0, 20.0, out=y),
        "elu": lambda: torch._C._nn.elu(x, alpha, 1.0, 1.0, out=y),
    }
    return ops[activation]


def backward_fn(activation, x, y, dy, dx, alpha):
    aten = torch.ops.aten
    ops = {
        "relu": lambda: aten.threshold_backward.grad_input(dy, x, 0.0, grad_input=dx),
        "tanh": lambda: aten.tanh_backward.grad_input(dy, y, grad_input=dx),
        "sigmoid": lambda: aten.sigmoid_backward.grad_input(dy, y, grad_input=dx),
        "softplus": lambda: aten.softplus_backward.grad_input(dy, x, 1.0, 20.0, grad_input=dx),
        "elu": lambda: aten.elu_backward.grad_input(dy, alpha, 1.0, 1.0, False, x, grad_input=dx),
    }
    return ops[activation]


def adam_fn(n, o, foreach):
    p = torch.nn.Parameter(torch.randn(n))
    p.grad = torch.randn(n)
    opt_class = torch.optim.AdamW if o["decoupled"] else torch.optim.Adam
    opt = opt_class([p], lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"],
                    weight_decay=o["weightDecay"], foreach=foreach)
    max_norm = o["maxGradNorm"]

    def step():
        if max_norm > 0:
            torch.nn.utils.clip_grad_norm_([p], max_norm)
        opt.step()

    return step


def main():
    spec = json.loads(sys.argv[1])
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    seconds, notes = {}, {}
    with torch.no_grad():
        for case in spec["cases"]:
            n = case["n"]
            x = torch.randn(n) * 4
            y = torch.empty(n)
            dy = torch.randn(n)
            dx = torch.empty(n)
            if case["op"] == "forward":
                seconds[case["name"]] = time_it(forward_fn(case["activation"], x, y, case.get("alpha", 1.0)),
                                                spec["minSeconds"], spec["rounds"])
                notes[case["name"]] = "out= variant"
            elif case["op"] == "backward":
                y = torch.tanh(x) if case["activation"] == "tanh" else torch.sigmoid(x)
                seconds[case["name"]] = time_it(backward_fn(case["activation"], x, y, dy, dx, case.get("alpha", 1.0)),
                                                spec["minSeconds"], spec["rounds"])
                notes[case["name"]] = "aten backward kernel, grad_input="
            elif case["op"] == "adam":
                best = None
                for foreach in (False, True):
                    t = time_it(adam_fn(n, case["options"], foreach), spec["minSeconds"], spec["rounds"])
                    if best is None or t < best[0]:
                        best = (t, foreach)
                seconds[case["name"]] = best[0]
                notes[case["name"]] = "foreach=%s" % best[1]
    print(json.dumps({"seconds": seconds, "notes": notes}))


if __name__ == "__main__":
    main()
