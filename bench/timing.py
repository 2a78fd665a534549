"""GPU timing shared by the bench scripts (imported as `from timing import timed, graphed`)."""

from __future__ import annotations

import statistics


def _events_median(run_once, reps: int, inner: int) -> float:
    import torch

    out = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        run_once()
        b.record()
        torch.cuda.synchronize()
        out.append(a.elapsed_time(b) * 1e-3 / inner)
    return statistics.median(out)


def timed(fn, reps: int = 20, inner: int = 10, warmup: int = 1) -> float:
    """Median seconds per call: `inner` calls back to back between two CUDA events (so the
    host's launch work overlaps the GPU's), `reps` such samples, after `warmup` calls."""
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()

    def run_once():
        for _ in range(inner):
            fn()
    return _events_median(run_once, reps, inner)


def graphed(fn, reps: int = 10, inner: int = 10) -> float | None:
    """Median seconds per call of `inner` calls captured in one CUDA graph and replayed: the
    GPU's time alone, without the host's launch work (None if capture fails)."""
    import torch

    try:
        fn()
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            for _ in range(inner):
                fn()
        g.replay()
        torch.cuda.synchronize()
        return _events_median(g.replay, reps, inner)
    except Exception as e:  # noqa: BLE001 - a bench reports and goes on
        print(f"  (CUDA graph capture failed: {type(e).__name__}: {e})")
        return None
