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


def set_threads(torch_threads, blas_threads=None):
    """PyTorch's intra-op pool and OpenBLAS's own pool (Debian's torch calls
    OpenBLAS, whose threads torch.set_num_threads does not reach); the BLAS
    pool gets `torch_threads` unless given."""
    import torch

    torch.set_num_threads(torch_threads)
    try:
        import ctypes
        import glob

        for lib in glob.glob("/usr/lib/x86_64-linux-gnu/libopenblas*.so*"):
            ctypes.CDLL(lib).openblas_set_num_threads(torch_threads if blas_threads is None else blas_threads)
            break
    except Exception:
        pass
