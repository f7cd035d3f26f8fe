"""Throughput of a training-style step for the PyTorch peers: a few warm-up
calls, then rounds calibrated to ~0.2 s each; the median rate over rounds."""
import time


def samples_per_second(step, batch, rounds=5):
    for _ in range(3):
        step()
    # Calibrate to ~0.2 s per round, then take the median of rounds.
    calls, t = 1, 0.0
    while True:
        t0 = time.perf_counter()
        for _ in range(calls):
            step()
        t = time.perf_counter() - t0
        if t >= 0.05:
            break
        calls *= 4
    calls = max(1, int(calls * 0.2 / t))
    rates = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            step()
        rates.append(batch * calls / (time.perf_counter() - t0))
    return sorted(rates)[len(rates) // 2]
